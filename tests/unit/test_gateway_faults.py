"""The gateway's fault behaviour against named fakes: the replica circuit breaker and retries with jittered
backoff, streams cut mid-way, guard and RAG outages (fail closed / fail open), and the client's deadline.
The same behaviour against real processes: tests/e2e/test_faults.py."""

from __future__ import annotations

import time

import grpc
import openai
import pytest
from prometheus_client import REGISTRY

from flotilla.v1 import guard_pb2, inference_pb2
from services.gateway.errors import OpenAIError
from services.gateway.generation import Generation
from services.gateway.routing import InferenceRouter
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import FAKE_MODEL, FakeGuard, FakeInferenceEngine, FakeRag, fake_upstreams, rpc_error
from tests.unit.fakes import fake_client as client_for

MESSAGES = [{"role": "user", "content": "hello there"}]
UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def request() -> inference_pb2.GenerateRequest:
    return inference_pb2.GenerateRequest(model=FAKE_MODEL, prompt="hello there")


async def router_over(engines: dict[str, FakeInferenceEngine], **kwargs) -> tuple[InferenceRouter, list[float]]:
    """A router over fake replicas whose backoff sleeps are recorded (and jitter takes the upper bound)."""
    router = InferenceRouter.from_stubs(engines, **kwargs)
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    router.sleep = sleep
    router.jitter = lambda low, high: high
    await router.refresh()
    return router, slept


def elapse(router: InferenceRouter, name: str) -> None:
    """Let the replica's open period pass (its circuit becomes half-open)."""
    router.replicas[name].down_until = time.monotonic() - 0.001


# -- the circuit breaker -------------------------------------------------------------------------------


async def test_unavailable_opens_the_circuit_at_once_for_longer_each_time() -> None:
    router, _ = await router_over({"r0": FakeInferenceEngine()}, eject_s=2.0, eject_max_s=5.0)
    r = router.replicas["r0"]
    for expected in (2.0, 4.0, 5.0, 5.0):  # doubling, capped
        router.failed(r, grpc.StatusCode.UNAVAILABLE)
        assert r.state == "open" and not r.up
        assert r.down_until - time.monotonic() == pytest.approx(expected, abs=0.1)
    router.succeeded(r)
    assert r.state == "closed" and r.opened == 0
    router.failed(r, grpc.StatusCode.UNAVAILABLE)
    assert r.down_until - time.monotonic() == pytest.approx(2.0, abs=0.1)  # back to the base period


async def test_other_failures_open_it_after_consecutive_ones_and_success_resets_the_count() -> None:
    router, _ = await router_over({"r0": FakeInferenceEngine()}, circuit_failures=3)
    r = router.replicas["r0"]
    router.failed(r, grpc.StatusCode.UNKNOWN)
    router.failed(r, grpc.StatusCode.INTERNAL)
    assert r.state == "closed" and r.failures == 2
    router.succeeded(r)
    router.failed(r, grpc.StatusCode.UNKNOWN)
    router.failed(r, grpc.StatusCode.UNKNOWN)
    assert r.state == "closed"
    router.failed(r, grpc.StatusCode.UNKNOWN)
    assert r.state == "open"
    # The replica's answer to a bad request is no failure of the replica.
    router.succeeded(r)
    for _ in range(5):
        router.failed(r, grpc.StatusCode.INVALID_ARGUMENT)
        router.failed(r, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert r.state == "closed" and r.failures == 0


async def test_half_open_lets_one_trial_through_and_its_outcome_decides() -> None:
    dead, alive = FakeInferenceEngine(unavailable=True), FakeInferenceEngine()
    router, _ = await router_over({"r-dead": dead, "r-alive": alive}, eject_s=1.0)
    r = router.replicas["r-dead"]
    router.failed(r, grpc.StatusCode.UNAVAILABLE)
    assert all(router.choose(FAKE_MODEL, f"k{i}").name == "r-alive" for i in range(20))  # open: skipped
    elapse(router, "r-dead")
    assert r.state == "half_open" and r.up
    # The trial fails: re-opened for twice as long; the request itself succeeds on the other replica.
    key = next(f"k{i}" for i in range(100) if router.choose(FAKE_MODEL, f"k{i}").name == "r-dead")
    _, _, replica = await router.open(request(), 10.0, key)
    router.release(replica)
    assert replica.name == "r-alive" and len(dead.requests) == 1
    assert r.state == "open" and r.opened == 2
    assert r.down_until - time.monotonic() == pytest.approx(2.0, abs=0.1)
    # While a trial is in flight no other request goes to the replica.
    elapse(router, "r-dead")
    r.trial = True
    assert not r.up and router.choose(FAKE_MODEL, key).name == "r-alive"
    # A successful trial closes the circuit.
    r.trial = False
    dead.unavailable = False
    _, _, replica = await router.open(request(), 10.0, key)
    router.release(replica)
    assert replica.name == "r-dead" and r.state == "closed" and r.opened == 0 and not r.trial


async def test_the_health_probe_half_opens_an_open_circuit_and_closes_a_half_open_one() -> None:
    """A replica that answers ListModels again (e.g. one that was still loading its model while the gateway
    started) gets its trial request at once instead of waiting out a doubled ejection."""
    router, _ = await router_over({"r0": FakeInferenceEngine(), "r1": FakeInferenceEngine()})
    r = router.replicas["r0"]
    for _ in range(4):
        router.failed(r, grpc.StatusCode.UNAVAILABLE)
    assert r.state == "open"
    await router.refresh()  # ListModels answers: one trial request may go there now
    assert r.state == "half_open" and r.up
    await router.refresh()
    assert r.state == "closed" and r.opened == 0


# -- retries -------------------------------------------------------------------------------------------


async def test_retries_use_jittered_exponential_backoff_and_stop_after_the_limit() -> None:
    engines = {f"r{i}": FakeInferenceEngine(unavailable=True) for i in range(5)}
    router, slept = await router_over(engines, retries=3, backoff_s=0.1, backoff_max_s=0.3)
    with pytest.raises(grpc.aio.AioRpcError):
        await router.open(request(), 10.0, "k")
    assert sum(len(e.requests) for e in engines.values()) == 4  # the first try and 3 retries
    assert slept == pytest.approx([0.1, 0.2, 0.3])  # upper bounds: base·2^k, capped
    bounds: list[tuple[float, float]] = []
    router.jitter = lambda low, high: bounds.append((low, high)) or high / 2
    assert router.backoff(1) == pytest.approx(0.05) and bounds == [(0.0, 0.1)]  # full jitter from 0


async def test_retries_go_to_other_replicas_only_and_not_for_the_callers_errors() -> None:
    dead, alive = FakeInferenceEngine(fail_code=grpc.StatusCode.UNKNOWN), FakeInferenceEngine()
    router, slept = await router_over({"r-dead": dead, "r-alive": alive})
    key = next(f"k{i}" for i in range(100) if router.choose(FAKE_MODEL, f"k{i}").name == "r-dead")
    labels = {"service": "inference", "code": "UNKNOWN"}
    errors, retries = (REGISTRY.get_sample_value("flotilla_upstream_errors_total", labels) or 0.0,
                       REGISTRY.get_sample_value("flotilla_inference_retries_total", {"code": "UNKNOWN"}) or 0.0)
    _, _, replica = await router.open(request(), 10.0, key)
    router.release(replica)
    assert replica.name == "r-alive" and len(dead.requests) == 1 and len(slept) == 1
    # The caller never saw the failure, but the metrics did.
    assert REGISTRY.get_sample_value("flotilla_upstream_errors_total", labels) == errors + 1
    assert REGISTRY.get_sample_value("flotilla_inference_retries_total", {"code": "UNKNOWN"}) == retries + 1
    assert router.replicas["r-dead"].failures == 1  # UNKNOWN counts, below the threshold
    bad = inference_pb2.GenerateRequest(model="other-model", prompt="x")
    router.replicas["r-alive"].models["other-model"] = router.replicas["r-alive"].models[FAKE_MODEL]
    with pytest.raises(grpc.aio.AioRpcError) as info:  # NOT_FOUND from the replica: not retried
        await router.open(bad, 10.0, key)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and len(slept) == 1


async def test_retries_stay_within_the_deadline() -> None:
    engines = {f"r{i}": FakeInferenceEngine(unavailable=True) for i in range(3)}
    router, slept = await router_over(engines, backoff_s=5.0, backoff_max_s=5.0)
    with pytest.raises(grpc.aio.AioRpcError):
        await router.open(request(), 0.5, "k")
    assert slept and all(s <= 0.5 for s in slept)
    assert all(t is not None and t <= 0.5 for e in engines.values() for t in e.timeouts)


# -- a stream cut after it started ---------------------------------------------------------------------


async def test_a_stream_cut_mid_way_ends_with_an_error_event_bills_what_was_delivered_and_ejects() -> None:
    engine = FakeInferenceEngine(reply="one two three four five six", cut_after=3)
    up = fake_upstreams(replicas={"r0": engine})
    gen = await Generation.open(up.inference, [request()], 10.0, "k")
    got = []
    with pytest.raises(OpenAIError) as info:
        async for _, msg in gen.messages():
            got.append(msg.delta.text)
    gen.close()
    assert info.value.code == "inference_interrupted" and info.value.status == 503
    assert got == ["one", " two", " three"]
    billed = gen.billed()
    assert billed.completion_tokens == 3
    assert up.inference.replicas["r0"].state == "open"

    client = client_for(replicas={"r0": FakeInferenceEngine(reply="one two three four five six", cut_after=3)})
    stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)
    chunks = []
    with pytest.raises(openai.APIError) as api:
        async for chunk in stream:
            chunks.append(chunk)
    assert api.value.code == "inference_interrupted" and "incomplete" in api.value.message
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three"


# -- guard and RAG outages -----------------------------------------------------------------------------


async def test_guard_unreachable_fails_closed_by_default() -> None:
    engine = FakeInferenceEngine()
    client = client_for(guard=FakeGuard(error=UNAVAILABLE), inference=engine)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=stream)
        assert info.value.status_code == 503 and info.value.code == "guard_unavailable"
    assert engine.requests == []  # nothing unscanned reached the model
    timeout = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
    with pytest.raises(openai.InternalServerError) as info:
        await client_for(guard=FakeGuard(error=timeout)).chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert info.value.code == "guard_unavailable"
    other = rpc_error(grpc.StatusCode.INTERNAL, "boom")
    with pytest.raises(openai.APIStatusError) as info:  # a guard that answers with an error is no outage
        await client_for(GatewaySettings(guard_fail_open=True), guard=FakeGuard(error=other)).chat.completions.create(
            model=FAKE_MODEL, messages=MESSAGES)
    assert info.value.status_code == 502


async def test_guard_unreachable_fails_open_when_configured() -> None:
    guard = FakeGuard(error=UNAVAILABLE)
    client = client_for(GatewaySettings(guard_fail_open=True), guard=guard)
    before = counter("flotilla_guard_fail_open_total")
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
    assert raw.headers["x-flotilla-guard"] == "skipped"
    assert raw.parse().choices[0].message.content == "echo: hello there"
    assert counter("flotilla_guard_fail_open_total") == before + 1  # once per request, not per scan
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)
    assert raw.headers["x-flotilla-guard"] == "skipped"
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "echo: hello there"
    assert counter("flotilla_guard_fail_open_total") == before + 2
    raw = await client.completions.with_raw_response.create(model=FAKE_MODEL, prompt="hi")
    assert raw.headers["x-flotilla-guard"] == "skipped" and raw.parse().choices[0].text == "echo: hi"
    # The guard comes back: scans happen again and no header is sent.
    guard.error = None
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
    assert "x-flotilla-guard" not in raw.headers


async def test_only_the_deferred_scan_unreachable() -> None:
    """The first part of the input scan answered, its deferred MiniLM part (ScanDeferred) could not be reached:
    fail-closed answers 503 before any output; fail-open serves the answer and says the scan was skipped."""
    guard = FakeGuard(deferred_verdict=guard_pb2.VERDICT_ALLOW, deferred_error=UNAVAILABLE)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            await client_for(guard=guard).chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=stream)
        assert info.value.status_code == 503 and info.value.code == "guard_unavailable"
    client = client_for(GatewaySettings(guard_fail_open=True), guard=guard)
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
    assert raw.headers["x-flotilla-guard"] == "skipped"
    assert raw.parse().choices[0].message.content == "echo: hello there"
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)
    assert raw.headers["x-flotilla-guard"] == "skipped"
    assert "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices]) == "echo: hello there"
    raw = await client.completions.with_raw_response.create(model=FAKE_MODEL, prompt="hi")
    assert raw.headers["x-flotilla-guard"] == "skipped"
    raw = await client.responses.with_raw_response.create(model=FAKE_MODEL, input="hello there")
    assert raw.headers["x-flotilla-guard"] == "skipped" and raw.parse().output_text == "echo: hello there"
    guard.deferred_error = None
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES)
    assert "x-flotilla-guard" not in raw.headers and guard.deferred  # scanned, nothing skipped


async def test_guard_lost_mid_stream_passes_the_rest_when_fail_open() -> None:
    guard = FakeGuard()
    client = client_for(GatewaySettings(guard_fail_open=True), guard=guard,
                        inference=FakeInferenceEngine(reply="one two three"))
    stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)
    guard.error = UNAVAILABLE  # after the input scan, before the output stream
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two three"


RAG_BODY = {"vector_store_ids": ["vs_1"]}


async def test_rag_unreachable_fails_by_default_and_answers_without_context_when_configured() -> None:
    engine = FakeInferenceEngine()
    with pytest.raises(openai.InternalServerError) as info:
        await client_for(rag=FakeRag(error=UNAVAILABLE), inference=engine).chat.completions.create(
            model=FAKE_MODEL, messages=MESSAGES, extra_body=RAG_BODY)
    assert info.value.code == "rag_unavailable" and engine.requests == []

    before = counter("flotilla_rag_degraded_total")
    client = client_for(GatewaySettings(rag_fail_open=True), rag=FakeRag(error=UNAVAILABLE), inference=engine)
    raw = await client.chat.completions.with_raw_response.create(model=FAKE_MODEL, messages=MESSAGES,
                                                                 extra_body=RAG_BODY)
    assert raw.headers["x-flotilla-rag"] == "unavailable" and raw.headers["x-flotilla-rag-chunks"] == "0"
    assert raw.parse().choices[0].message.content == "echo: hello there"
    assert [m.role for m in engine.requests[-1].chat.messages] == ["user"]  # no context message
    assert counter("flotilla_rag_degraded_total") == before + 1
    # RAG's own answer (a store that does not exist) is not an outage: mapped as usual.
    missing = rpc_error(grpc.StatusCode.NOT_FOUND, "No vector store vs_1.", "not_found")
    client = client_for(GatewaySettings(rag_fail_open=True), rag=FakeRag(error=missing))
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, extra_body=RAG_BODY)
    assert counter("flotilla_rag_degraded_total") == before + 1


# -- deadlines -----------------------------------------------------------------------------------------


async def test_the_clients_timeout_header_shortens_the_inference_deadline() -> None:
    engine = FakeInferenceEngine()
    client = client_for(GatewaySettings(inference_timeout_s=30), inference=engine)
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES,
                                         extra_headers={"x-flotilla-timeout-s": "2.5"})
    await client.completions.create(model=FAKE_MODEL, prompt="hi", extra_headers={"x-flotilla-timeout-s": "99"})
    assert engine.timeouts[0] == pytest.approx(30, abs=0.5)
    assert engine.timeouts[1] == pytest.approx(2.5, abs=0.5)
    assert engine.timeouts[2] == pytest.approx(30, abs=0.5)  # never longer than the gateway's own
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES,
                                                 extra_headers={"x-flotilla-timeout-s": bad})
