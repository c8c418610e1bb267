"""Authentication, model access and quota responses of the gateway (no database: the key cache and the
quota leases are in memory; the Postgres-backed paths are in tests/integration and tests/e2e)."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import FAKE_MODEL, FakeInferenceEngine, fake_access, fake_upstreams

MESSAGES = [{"role": "user", "content": "hello there"}]


def make(**limits):
    settings = GatewaySettings()
    access, key = fake_access(settings, **limits)
    engine = FakeInferenceEngine()
    app = create_app(settings, fake_upstreams(inference=engine), access)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http, max_retries=0)
    return http, client, key, engine


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer fl-abc123.wrong-secret", "Basic fl-abc123.x"])
async def test_missing_or_bad_key_is_401_invalid_api_key(auth) -> None:
    http, _, _, engine = make()
    headers = {"authorization": auth} if auth else {}
    for path, body in (("/v1/chat/completions", {"model": FAKE_MODEL, "messages": MESSAGES}),
                       ("/v1/completions", {"model": FAKE_MODEL, "prompt": "x"})):
        r = await http.post(path, json=body, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
    r = await http.get("/v1/models", headers=headers)
    assert r.status_code == 401
    assert engine.requests == []


async def test_model_outside_the_key_is_404_and_hidden_from_models() -> None:
    _, client, _, engine = make(models=["other-model"])
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    assert [m.id async for m in client.models.list()] == []
    assert engine.requests == []


async def test_rpm_limit_gives_429_with_openai_headers() -> None:
    http, client, key, _ = make(rpm=3)
    ok = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
    assert ok.headers["x-ratelimit-limit-requests"] == "3"
    assert ok.headers["x-ratelimit-remaining-requests"] == "2"
    for _ in range(2):
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    r = await http.post("/v1/chat/completions", json={"model": FAKE_MODEL, "messages": MESSAGES},
                        headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["x-ratelimit-limit-requests"] == "3" and r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.headers["x-ratelimit-reset-requests"].endswith("s") and int(r.headers["retry-after"]) >= 1


async def test_tpm_reserves_prompt_plus_max_tokens_and_settles_to_the_real_count() -> None:
    _, client, _, _ = make(tpm=200)
    # each request reserves its prompt estimate + 50; the real use is ~7 tokens, so many fit in 200
    for _ in range(8):
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, max_tokens=50)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, max_tokens=190)


async def test_exhausted_budget_is_429_insufficient_quota() -> None:
    _, client, _, _ = make(max_budget_tokens=100, spent_tokens=100)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert info.value.body["code"] == "insufficient_quota"


async def test_admin_api_is_closed_without_the_admin_key() -> None:
    http, _, key, _ = make()
    assert (await http.get("/admin/keys")).status_code == 403  # disabled: no admin key configured
    settings = GatewaySettings(admin_key="root-secret")
    access, _ = fake_access(settings)
    app = create_app(settings, fake_upstreams(), access)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as admin:
        r = await admin.get("/admin/keys", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 401
