"""The gateway's /metrics, access log, trace/log correlation and /healthz + /readyz, over named fakes of the
upstream stubs (tests/unit/fakes.py). The real fleet is checked in tests/e2e/test_observability_fleet.py."""

from __future__ import annotations

import io
import json
import logging

import grpc
import httpx
import openai
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from flotilla import tracing
from flotilla.telemetry import JsonFormatter
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import (
    FAKE_MODEL,
    FakeHealth,
    FakeInferenceEngine,
    FakePool,
    FakeRag,
    fake_access,
    fake_upstreams,
    rpc_error,
)

SECRET_PROMPT = "my passport number is ZX-4471-SECRET, please summarise"
MESSAGES = [{"role": "user", "content": SECRET_PROMPT}]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make(settings: GatewaySettings | None = None, upstreams=None, **limits):
    settings = settings or GatewaySettings()
    access, key = fake_access(settings, **limits)
    up = upstreams or fake_upstreams(inference=FakeInferenceEngine())
    app = create_app(settings, up, access)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http, max_retries=0)
    return app, http, client, key, up


class Captured:
    """JSON log lines of every logger, as the services write them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter("gateway"))

    def __enter__(self) -> Captured:
        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def access_lines(self) -> list[dict]:
        lines = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [e for e in lines if e["logger"] == "flotilla.access"]


# -- metrics -------------------------------------------------------------------------------------------


async def test_requests_tokens_ttft_and_in_flight_are_counted_per_route_model_and_key() -> None:
    _, http, client, _, _ = make()
    route = "/v1/chat/completions"
    ok = {"route": route, "model": FAKE_MODEL, "status": "200"}
    before = {
        "requests": value("flotilla_requests_total", **ok),
        "duration": value("flotilla_request_duration_seconds_count", route=route, model=FAKE_MODEL),
        "ttft": value("flotilla_time_to_first_token_seconds_count", model=FAKE_MODEL),
        "prompt": value("flotilla_tokens_total", model=FAKE_MODEL, key_id="abc123", type="prompt"),
        "completion": value("flotilla_tokens_total", model=FAKE_MODEL, key_id="abc123", type="completion"),
    }
    done = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    streamed = [c async for c in stream]
    usage = streamed[-1].usage
    assert value("flotilla_requests_total", **ok) == before["requests"] + 2
    assert value("flotilla_request_duration_seconds_count", route=route, model=FAKE_MODEL) == before["duration"] + 2
    assert value("flotilla_time_to_first_token_seconds_count", model=FAKE_MODEL) == before["ttft"] + 2
    assert value("flotilla_tokens_total", model=FAKE_MODEL, key_id="abc123", type="prompt") == (
        before["prompt"] + done.usage.prompt_tokens + usage.prompt_tokens)
    assert value("flotilla_tokens_total", model=FAKE_MODEL, key_id="abc123", type="completion") == (
        before["completion"] + done.usage.completion_tokens + usage.completion_tokens)
    assert value("flotilla_requests_in_flight", route=route) == 0

    # served on the HTTP port without an API key, in the Prometheus text format, outside the OpenAPI schema
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"flotilla_requests", "flotilla_tokens", "flotilla_time_to_first_token_seconds",
            "flotilla_requests_in_flight", "flotilla_guard_fail_open", "flotilla_rag_degraded"} <= names
    assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]
    assert "unit-test-secret" not in r.text  # key ids only


async def test_route_label_is_the_template_and_unknown_paths_share_one_label() -> None:
    _, http, _, _, _ = make()
    files = {"route": "/v1/files/{file_id}", "model": "", "status": "401"}
    unmatched = {"route": "unmatched", "model": "", "status": "404"}
    before = value("flotilla_requests_total", **files), value("flotilla_requests_total", **unmatched)
    assert (await http.get("/v1/files/file-abc")).status_code == 401
    assert (await http.get("/v1/files/file-def")).status_code == 401
    assert (await http.get("/no/such/path-1")).status_code == 404
    assert (await http.get("/no/such/path-2")).status_code == 404
    assert value("flotilla_requests_total", **files) == before[0] + 2
    assert value("flotilla_requests_total", **unmatched) == before[1] + 2
    r = await http.get("/metrics")
    assert "file-abc" not in r.text and "path-1" not in r.text


async def test_quota_rejections_and_upstream_errors_are_counted() -> None:
    rag = FakeRag(error=rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    _, _, client, _, _ = make(upstreams=fake_upstreams(inference=FakeInferenceEngine(), rag=rag), rpm=2)
    rejected = value("flotilla_quota_rejections_total", key_id="abc123", limit="requests")
    failed = value("flotilla_upstream_errors_total", service="rag", code="UNAVAILABLE")
    with pytest.raises(openai.InternalServerError):  # 503 from the RAG hop
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES,
                                             extra_body={"vector_store_ids": ["vs_1"]})
    assert value("flotilla_upstream_errors_total", service="rag", code="UNAVAILABLE") == failed + 1
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert value("flotilla_quota_rejections_total", key_id="abc123", limit="requests") == rejected + 1
    assert value("flotilla_requests_total", route="/v1/chat/completions", model=FAKE_MODEL, status="429") >= 1


# -- access log ----------------------------------------------------------------------------------------


async def test_access_log_has_the_request_facts_and_never_the_key_or_the_prompt() -> None:
    _, http, client, key, _ = make()
    with Captured() as logs:
        raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
        done = raw.parse()
        stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)
        _ = [c async for c in stream]
        await http.post("/v1/chat/completions", json={"model": FAKE_MODEL, "messages": MESSAGES},
                        headers={"authorization": "Bearer fl-abc123.wrong-secret"})
        await http.get("/healthz")
    lines = logs.access_lines()
    assert len(lines) == 3  # probes are not logged
    first = lines[0]
    assert first["request_id"] == raw.headers["x-request-id"]
    assert first["route"] == "/v1/chat/completions" and first["method"] == "POST"
    assert first["status"] == 200 and first["key_id"] == "abc123" and first["model"] == FAKE_MODEL
    assert first["prompt_tokens"] == done.usage.prompt_tokens
    assert first["completion_tokens"] == done.usage.completion_tokens
    assert first["latency_ms"] > 0 and first["finish_reason"] == "stop"
    assert lines[1]["status"] == 200 and lines[1]["completion_tokens"] > 0  # the stream, once it ended
    assert lines[2]["status"] == 401 and lines[2]["key_id"] is None
    assert "prompt" not in first
    text = logs.text
    assert key not in text and "unit-test-secret" not in text and "wrong-secret" not in text
    assert "ZX-4471" not in text and "passport" not in text


async def test_prompt_text_is_logged_only_when_enabled() -> None:
    _, _, client, key, _ = make(GatewaySettings(log_prompts=True))
    with Captured() as logs:
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    (line,) = logs.access_lines()
    assert SECRET_PROMPT in line["prompt"]
    assert key not in logs.text and "unit-test-secret" not in logs.text


async def test_log_lines_carry_trace_and_span_ids_of_the_request_span() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.setup_tracing("gateway-unit", exporter=exporter, simple=True)
    try:
        _, _, client, _, _ = make()  # instrumented: created while tracing is on
        with Captured() as logs:
            await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, max_tokens=5,
                                                 temperature=0.5)
    finally:
        tracing.disable_tracing()
    (line,) = logs.access_lines()
    (server,) = [s for s in exporter.get_finished_spans() if s.name == "POST /v1/chat/completions"]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert len(line["span_id"]) == 16
    attrs = server.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == FAKE_MODEL
    assert attrs["gen_ai.request.max_tokens"] == 5 and attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["length"]
    assert attrs["gen_ai.response.id"].startswith("chatcmpl-")
    assert SECRET_PROMPT not in json.dumps({k: str(v) for k, v in attrs.items()})


def test_json_formatter_has_no_trace_fields_outside_a_span() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    entry = json.loads(JsonFormatter("gateway").format(record))
    assert "trace_id" not in entry and "span_id" not in entry


def test_tracing_is_off_without_otel_variables() -> None:
    assert tracing.exporter_from_env({}) is None
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None
    assert type(tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "console"})).__name__ == "ConsoleSpanExporter"
    otlp = tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert type(otlp).__module__.endswith("proto.grpc.trace_exporter")
    http = tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert type(http).__module__.endswith("proto.http.trace_exporter")
    with pytest.raises(ValueError):
        tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
    assert not tracing.enabled() and tracing.server_interceptors() == [] and tracing.client_interceptors() == []


# -- health --------------------------------------------------------------------------------------------


def health_upstreams(guard: str = "SERVING", rag: str = "SERVING", inference: FakeInferenceEngine | None = None):
    up = fake_upstreams(inference=inference or FakeInferenceEngine())
    up.health = {"guard": FakeHealth(guard), "rag": FakeHealth(rag)}
    return up


async def test_readyz_is_200_when_every_upstream_serves_and_lists_them() -> None:
    up = health_upstreams()
    app, http, _, _, _ = make(upstreams=up)
    app.state.access.pool = FakePool()
    r = await http.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["inference_replicas"] == 1
    assert body["upstreams"] == {"guard": "SERVING", "rag": "SERVING", "inference": "SERVING",
                                 "postgres": "SERVING"}
    assert (await http.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize("broken", ["guard", "rag"])
async def test_readyz_is_503_when_guard_or_rag_is_not_serving(broken: str) -> None:
    up = health_upstreams(**{broken: "NOT_SERVING"})
    _, http, _, _, _ = make(upstreams=up)
    r = await http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["upstreams"][broken] == "NOT_SERVING" and r.json()["ready"] is False
    assert (await http.get("/healthz")).status_code == 200  # alive all the same


async def test_readyz_does_not_wait_for_a_guard_that_is_off_or_an_upstream_served_without() -> None:
    """A guard turned off is DISABLED; a guard or RAG the gateway fails open without is DEGRADED: both ready."""
    settings = GatewaySettings(guard_enabled=False, rag_fail_open=True, ready_cache_s=0)
    _, http, _, _, _ = make(settings, upstreams=health_upstreams(guard="NOT_SERVING", rag="NOT_SERVING"))
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["upstreams"]["guard"] == "DISABLED" and r.json()["upstreams"]["rag"] == "DEGRADED"
    settings = GatewaySettings(guard_fail_open=True, ready_cache_s=0)
    _, http, _, _, _ = make(settings, upstreams=health_upstreams(guard="NOT_SERVING", rag="NOT_SERVING"))
    r = await http.get("/readyz")
    assert r.status_code == 503  # RAG is still required
    assert r.json()["upstreams"]["guard"] == "DEGRADED" and r.json()["upstreams"]["rag"] == "NOT_SERVING"


async def test_readyz_is_503_without_an_inference_replica_and_when_guard_is_unreachable() -> None:
    up = health_upstreams(inference=FakeInferenceEngine(unavailable=True))
    up.inference.replicas["fake-0"].models = {}  # no replica announced a model
    up.health["guard"].error = rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")

    async def unavailable(request, timeout=None):
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")

    up.inference.replicas["fake-0"].stub.ListModels = unavailable
    _, http, _, _, _ = make(upstreams=up)
    r = await http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["upstreams"]["inference"] == "NOT_SERVING" and r.json()["upstreams"]["guard"] == "UNAVAILABLE"
    assert r.json()["inference_replicas"] == 0


async def test_readyz_with_postgres_down_depends_on_cached_keys() -> None:
    app, http, _, _, _ = make(GatewaySettings(ready_cache_s=0), upstreams=health_upstreams())
    app.state.access.pool = FakePool(error=OSError("connection refused"))
    r = await http.get("/readyz")
    assert r.status_code == 200 and r.json()["upstreams"]["postgres"] == "DEGRADED"  # cached keys keep serving
    app.state.access.keys.keys.clear()  # nothing cached: no request could authenticate
    r = await http.get("/readyz")
    assert r.status_code == 503 and r.json()["upstreams"]["postgres"] == "UNAVAILABLE"


async def test_readyz_result_is_cached_briefly() -> None:
    up = health_upstreams()
    _, http, _, _, _ = make(GatewaySettings(ready_cache_s=30), upstreams=up)
    for _ in range(5):
        assert (await http.get("/readyz")).status_code == 200
    assert up.health["guard"].calls == 1
    up.health["guard"].status = "NOT_SERVING"
    assert (await http.get("/readyz")).status_code == 200  # still the cached answer
    assert (await http.get("/health")).status_code == 200 and (await http.get("/ready")).status_code == 200
