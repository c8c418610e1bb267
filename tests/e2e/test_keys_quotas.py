"""Keys, quotas and the ledger through real gateway processes: three gateways share one Postgres and the
fleet's real guard and vLLM replicas; a key's RPM holds across them, revocation reaches all of them, and
every request — streamed, cut short, refused — is in the ledger exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import asyncpg
import httpx
import openai
import pytest

from flotilla.devfleet import DevFleet
from tests.conftest import MODEL_NAME, free_port
from tests.conftest import flotilla_cli as cli

pytestmark = pytest.mark.fleet
ASK = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def gateways(fleet: DevFleet) -> Iterator[list[str]]:
    """Three more gateway processes, like three replicas of the gateway Deployment."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(fleet.extra_gateway(f"gateway-quota-{i}", free_port(), {
                "FLOTILLA_GATEWAY_ADMIN_KEY": "e2e-admin-secret",
                "FLOTILLA_GATEWAY_LEDGER_SPOOL": str(fleet.config.home / f"spool-{i}.jsonl"),
            }))
            for i in range(3)
        ]


async def ledger_rows(fleet: DevFleet, key_name: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(fleet.database_url)
    try:
        return await conn.fetch(
            "SELECT u.* FROM usage_ledger u JOIN api_keys k ON k.id = u.key_id WHERE k.name = $1", key_name)
    finally:
        await conn.close()


async def wait_rows(fleet: DevFleet, key_name: str, count: int) -> list[asyncpg.Record]:
    deadline = time.monotonic() + 10
    while True:
        rows = await ledger_rows(fleet, key_name)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def test_rpm_holds_across_three_gateways_and_the_ledger_counts_each_once(fleet, gateways) -> None:
    key = cli(fleet, "keys", "create", "--name", "rpm-e2e", "--rpm", "6").strip().splitlines()[-1]
    await asyncio.sleep(1)  # the new key reaches the gateways' caches through NOTIFY
    clients = [openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=key, max_retries=0) for u in gateways]

    async def one(i: int) -> int:
        try:
            await clients[i % 3].chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=2)
            return 200
        except openai.RateLimitError as exc:
            assert exc.response.headers["x-ratelimit-limit-requests"] == "6"
            return 429

    statuses = await asyncio.gather(*(one(i) for i in range(18)))
    assert statuses.count(200) == 6 and statuses.count(429) == 12
    rows = await wait_rows(fleet, "rpm-e2e", 6)
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    assert all(r["status"] == 200 and r["completion_tokens"] <= 2 and r["prompt_tokens"] > 0 for r in rows)
    assert all(r["guard_verdict"] in ("allow", "redact") for r in rows)  # the guard's verdict is audited
    usage = cli(fleet, "usage", "--key", "rpm-e2e")
    assert "rpm-e2e" in usage and " 6 " in usage


async def test_revocation_reaches_every_gateway_within_a_second(fleet, gateways) -> None:
    key = cli(fleet, "keys", "create", "--name", "revoke-e2e").strip().splitlines()[-1]
    await asyncio.sleep(1)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30) as http:
        for url in gateways:
            assert (await http.get(f"{url}/v1/models", headers=headers)).status_code == 200
        cli(fleet, "keys", "revoke", "revoke-e2e")
        started = time.monotonic()
        for url in gateways:
            while (await http.get(f"{url}/v1/models", headers=headers)).status_code != 401:
                assert time.monotonic() - started < 1.5, "revocation slower than a second"
                await asyncio.sleep(0.05)


async def test_streams_are_billed_including_a_client_that_leaves(fleet, gateways) -> None:
    key = cli(fleet, "keys", "create", "--name", "stream-e2e").strip().splitlines()[-1]
    await asyncio.sleep(1)
    client = openai.AsyncOpenAI(base_url=f"{gateways[0]}/v1", api_key=key, max_retries=0)
    # A stream without include_usage: the client sees no usage chunk, the ledger still gets the usage.
    stream = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=8, stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    # A client that leaves after a few chunks is billed for what was generated up to then.
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": "Write a long story about a river."}]}
    async with httpx.AsyncClient(timeout=60, headers={"authorization": f"Bearer {key}"}) as http:
        async with http.stream("POST", f"{gateways[0]}/v1/chat/completions", json=body) as resp:
            seen = 0
            async for line in resp.aiter_lines():
                seen += line.startswith("data: ")
                if seen >= 6:
                    break
    rows = await wait_rows(fleet, "stream-e2e", 2)
    assert len(rows) == 2
    full = next(r for r in rows if r["finish_reason"] in ("stop", "length"))
    assert 0 < full["completion_tokens"] <= 8 and full["prompt_tokens"] > 0
    cut = next(r for r in rows if r is not full)
    assert 3 <= cut["completion_tokens"] < 200 and cut["prompt_tokens"] > 0


async def test_embeddings_are_billed_and_count_against_the_token_quota(fleet, gateways) -> None:
    key = cli(fleet, "keys", "create", "--name", "embed-e2e", "--tpm", "60").strip().splitlines()[-1]
    await asyncio.sleep(1)
    client = openai.AsyncOpenAI(base_url=f"{gateways[0]}/v1", api_key=key, max_retries=0)
    resp = await client.embeddings.create(model="all-MiniLM-L6-v2", input=["The lighthouse was built in 1867.",
                                                                           "Sourdough rye bread."])
    assert resp.usage.prompt_tokens > 0
    rows = await wait_rows(fleet, "embed-e2e", 1)
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"], r["status"]) for r in rows] == [
        ("embeddings", resp.usage.prompt_tokens, 0, 200)]
    # The token quota holds for embeddings too: 60 tokens a minute do not admit a ~400-character input.
    with pytest.raises(openai.RateLimitError) as info:
        await client.embeddings.create(model="all-MiniLM-L6-v2", input="lighthouse " * 40)
    assert info.value.response.headers["x-ratelimit-limit-tokens"] == "60"
    assert "embed-e2e" in cli(fleet, "usage", "--key", "embed-e2e")


async def test_admin_api_creates_lists_and_revokes(gateways) -> None:
    admin = {"authorization": "Bearer e2e-admin-secret"}
    async with httpx.AsyncClient(base_url=gateways[1], timeout=30, headers=admin) as http:
        created = (await http.post("/admin/keys", json={"name": "admin-e2e", "tpm": 500})).json()
        assert created["key"].startswith("fl-") and created["tpm"] == 500
        listed = (await http.get("/admin/keys")).json()["data"]
        assert "admin-e2e" in [k["name"] for k in listed] and all("key" not in k for k in listed)
        assert (await http.post("/admin/keys", json={"name": "admin-e2e"})).status_code == 409
        # Guard policies per key: validated (400 with the OpenAI error shape), set, replaced, cleared.
        bad = await http.post("/admin/keys", json={"name": "admin-g", "guard_policy": {"input": "toxicity=redact"}})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "guard_policy"
        made = (await http.post("/admin/keys", json={"name": "admin-g", "guard_policy": {"input": "pii=block"}})).json()
        assert made["guard_policy"] == {"input": "pii=block"}
        put = await http.put("/admin/keys/admin-g/guard_policy", json={"output": "secrets=block:0.9"})
        assert put.json()["guard_policy"] == {"output": "secrets=block:0.9"}
        assert (await http.put("/admin/keys/admin-g/guard_policy", json={})).json()["guard_policy"] is None
        assert (await http.put("/admin/keys/nobody/guard_policy", json={})).status_code == 404
        assert (await http.delete("/admin/keys/admin-e2e")).json()["revoked"] is True
        assert (await http.get("/admin/usage")).status_code == 200
        assert (await http.get("/admin/keys", headers={"authorization": "Bearer wrong"})).status_code == 401
