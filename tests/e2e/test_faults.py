"""Fault behaviour against real processes: unreachable guard and RAG, deadlines, an inference replica killed
mid-stream, and SIGTERM to the gateway, the guard and RAG.

The shared fleet's processes are never stopped here: tests that kill or stop a process start their own
(``fleet.extra_service`` / ``fleet.extra_gateway``); an unreachable upstream is a gateway pointed at a port
where nothing listens.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.devfleet import DevFleet
from flotilla.tls import secure_channel
from flotilla.v1 import guard_pb2, guard_pb2_grpc, rag_pb2, rag_pb2_grpc
from services.gateway.chat import _affinity
from services.gateway.routing import _score
from tests.conftest import MODEL_NAME, free_port, scrape, scrape_labeled

pytestmark = pytest.mark.fleet

HI = [{"role": "user", "content": "Say hello."}]
LONG = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def dead_target() -> str:
    """host:port where nothing listens (connections are refused)."""
    return f"127.0.0.1:{free_port()}"


def auth(fleet: DevFleet) -> dict[str, str]:
    return {"authorization": f"Bearer {fleet.api_key}"}


def log_lines(fleet: DevFleet, name: str) -> list[dict[str, Any]]:
    out = []
    for line in (fleet.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def ledger_row(fleet: DevFleet, row_id: str, timeout_s: float = 20.0, column: str = "id") -> asyncpg.Record:
    """The ledger row of a response ``id`` (or of an ``x-request-id`` with column="request_id")."""
    deadline = time.monotonic() + timeout_s
    while True:
        conn = await asyncpg.connect(fleet.database_url)
        try:
            row = await conn.fetchrow(f"SELECT * FROM usage_ledger WHERE {column} = $1", row_id)
        finally:
            await conn.close()
        if row is not None:
            return row
        assert time.monotonic() < deadline, f"no ledger row {row_id}"
        await asyncio.sleep(0.3)


async def sse(resp: httpx.Response) -> AsyncIterator[Any]:
    """The JSON payloads of an event stream, then the string "[DONE]" if it ends properly."""
    async for line in resp.aiter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            yield data if data == "[DONE]" else json.loads(data)


def running(port: int) -> float:
    return scrape(port).get("vllm:num_requests_running", 0.0)


async def wait_idle(ports: list[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(running(p) for p in ports):
        assert time.monotonic() < deadline, "the vLLM request kept running after its deadline"
        await asyncio.sleep(0.2)


# -- guard unreachable ---------------------------------------------------------------------------------


async def test_guard_unreachable_fails_closed_by_default(fleet: DevFleet) -> None:
    env = {"FLOTILLA_GATEWAY_GUARD_TARGET": dead_target()}
    with fleet.extra_gateway("gateway-guard-closed", free_port(), env, ready_path="/health") as base:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=fleet.api_key, max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as info:
                await client.chat.completions.create(model=MODEL_NAME, messages=HI, max_tokens=4, stream=stream)
            assert info.value.status_code == 503
            assert info.value.code == "guard_unavailable"
            assert info.value.type == "server_error"
            assert "guard" in info.value.message
            assert info.value.response.headers["retry-after"] == "1"
            row = await ledger_row(fleet, info.value.response.headers["x-request-id"], column="request_id")
            assert row["status"] == 503 and row["completion_tokens"] == 0
        with pytest.raises(openai.InternalServerError) as info:
            await client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=4)
        assert info.value.code == "guard_unavailable"


async def test_guard_unreachable_fails_open_when_configured(fleet: DevFleet) -> None:
    env = {"FLOTILLA_GATEWAY_GUARD_TARGET": dead_target(), "FLOTILLA_GATEWAY_GUARD_FAIL_OPEN": "true"}
    name = "gateway-guard-open"
    with fleet.extra_gateway(name, free_port(), env, ready_path="/health") as base:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=fleet.api_key, max_retries=0)
        raw = await client.chat.completions.with_raw_response.create(model=MODEL_NAME, messages=HI, max_tokens=4)
        assert raw.headers["x-flotilla-guard"] == "skipped"
        resp = raw.parse()
        assert resp.choices[0].message.content and resp.usage.completion_tokens > 0
        row = await ledger_row(fleet, resp.id)
        assert row["status"] == 200 and "guard.skipped" in row["guard_findings"]

        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth(fleet)) as http:
            body = {"model": MODEL_NAME, "messages": HI, "max_tokens": 6, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200 and r.headers["x-flotilla-guard"] == "skipped"
                events = [e async for e in sse(r)]
        assert events[-1] == "[DONE]"
        assert [c["choices"][0]["finish_reason"] for c in events[:-1] if c["choices"][0]["finish_reason"]] in (
            ["length"], ["stop"])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1])
        assert text  # the answer passed unscanned
        skipped = [e for e in log_lines(fleet, name) if e["msg"].startswith("guard unreachable: scan skipped")]
        assert {e["rpc"] for e in skipped} >= {"ScanInput", "ScanOutput", "ScanOutputStream"}


# -- RAG unreachable -----------------------------------------------------------------------------------


RAG_BODY = {"model": MODEL_NAME, "messages": HI, "max_tokens": 4, "vector_store_ids": ["vs_anything"]}


async def test_rag_unreachable_fails_by_default(fleet: DevFleet) -> None:
    env = {"FLOTILLA_GATEWAY_RAG_TARGET": dead_target()}
    with fleet.extra_gateway("gateway-rag-closed", free_port(), env, ready_path="/health") as base:
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth(fleet)) as http:
            r = await http.post("/v1/chat/completions", json=RAG_BODY)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "rag_unavailable" and r.json()["error"]["type"] == "server_error"
            r = await http.post("/v1/chat/completions", json={**RAG_BODY, "vector_store_ids": None})
            assert r.status_code == 200, r.text  # requests without retrieval do not need RAG


async def test_rag_unreachable_answers_without_context_when_configured(fleet: DevFleet) -> None:
    env = {"FLOTILLA_GATEWAY_RAG_TARGET": dead_target(), "FLOTILLA_GATEWAY_RAG_FAIL_OPEN": "true"}
    name = "gateway-rag-open"
    with fleet.extra_gateway(name, free_port(), env, ready_path="/health") as base:
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth(fleet)) as http:
            r = await http.post("/v1/chat/completions", json=RAG_BODY)
            assert r.status_code == 200, r.text
            assert r.headers["x-flotilla-rag"] == "unavailable" and r.headers["x-flotilla-rag-chunks"] == "0"
            assert r.json()["choices"][0]["message"]["content"]
            async with http.stream("POST", "/v1/chat/completions", json={**RAG_BODY, "stream": True}) as s:
                assert s.status_code == 200 and s.headers["x-flotilla-rag"] == "unavailable"
                assert [e async for e in sse(s)][-1] == "[DONE]"
    assert any(e["msg"].startswith("rag unreachable") for e in log_lines(fleet, name))


# -- deadlines -----------------------------------------------------------------------------------------


async def test_gateway_deadline_becomes_the_grpc_deadline_and_aborts_vllm(fleet: DevFleet) -> None:
    """inference_timeout_s 3: the long stream ends with a 504 upstream_timeout event after ~3 s, and the
    replica's vLLM request is aborted (running back to 0, counted as cancelled)."""
    port, metrics = fleet.config.ports["inference"], fleet.config.metrics_ports["inference"]
    env = {"FLOTILLA_GATEWAY_INFERENCE_TARGETS": f"127.0.0.1:{port}", "FLOTILLA_GATEWAY_INFERENCE_TIMEOUT_S": "3"}
    with fleet.extra_gateway("gateway-deadline", free_port(), env) as base:
        cancelled = scrape_labeled(metrics, "flotilla_inference_requests_total", outcome="cancelled")
        body = {"model": MODEL_NAME, "messages": LONG, "max_tokens": 1500, "temperature": 0, "stream": True}
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth(fleet)) as http:
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                events = [e async for e in sse(r)]
        elapsed = time.monotonic() - started
        row = await ledger_row(fleet, r.headers["x-request-id"], column="request_id")
        assert row["status"] == 504 and row["completion_tokens"] > 0
        assert events[-1] == "[DONE]"
        error = events[-2]["error"]
        assert error["code"] == "upstream_timeout" and error["type"] == "server_error"
        assert any(e["choices"] and e["choices"][0]["delta"].get("content") for e in events[:-2])
        assert 2.5 < elapsed < 10, elapsed
        await wait_idle([metrics])
        after = scrape_labeled(metrics, "flotilla_inference_requests_total", outcome="cancelled")
        assert after == cancelled + 1


async def test_client_timeout_header_shortens_the_deadline(fleet: DevFleet) -> None:
    metrics = list(fleet.config.metrics_ports.values())
    body = {"model": MODEL_NAME, "messages": LONG, "max_tokens": 1500, "temperature": 0}
    async with httpx.AsyncClient(base_url=fleet.config.base_url, timeout=60, headers=auth(fleet)) as http:
        started = time.monotonic()
        r = await http.post("/chat/completions", json=body, headers={"x-flotilla-timeout-s": "2"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - started < 8
        await wait_idle(metrics)
        r = await http.post("/chat/completions", json=body, headers={"x-flotilla-timeout-s": "soon"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_value"


# -- SIGTERM: readiness goes, in-flight work finishes --------------------------------------------------


async def health(channel: grpc.aio.Channel) -> str:
    try:
        resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


GRACE_S = 20  # the drain grace of the guard and RAG processes started here


async def assert_drains(proc: subprocess.Popen[bytes], channel: grpc.aio.Channel, work: asyncio.Task[Any],
                        started: asyncio.Event) -> Any:
    """SIGTERM while ``work`` is in flight: readiness drops at once, the work completes within the grace
    period (past it, the server would cancel it with UNAVAILABLE), the process exits 0."""
    assert await health(channel) == "SERVING"
    await started.wait()
    await asyncio.sleep(0.3)
    assert not work.done(), "the call finished before SIGTERM: make it longer"
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.sleep(0.3)
    assert await health(channel) in ("NOT_SERVING", "UNAVAILABLE")
    result = await asyncio.wait_for(work, GRACE_S + 10)
    assert time.monotonic() - signalled < GRACE_S
    assert await asyncio.to_thread(proc.wait, 30) == 0
    return result


async def test_sigterm_to_guard_finishes_in_flight_scans(fleet: DevFleet) -> None:
    port = free_port()
    with fleet.extra_service("guard-drain", "guard", port, {"FLOTILLA_GUARD_DRAIN_GRACE_S": str(GRACE_S)}) as proc:
        channel = secure_channel(f"127.0.0.1:{port}", fleet.certs["gateway"])
        stub = guard_pb2_grpc.GuardStub(channel)
        texts = [f"Message {i}: please summarise the quarterly report of the harbour office. " * 40
                 for i in range(16)]  # ~0.35 s a text on our 2 cores
        started = asyncio.Event()

        async def scan() -> guard_pb2.ScanResponse:
            started.set()
            return await stub.ScanInput(guard_pb2.ScanRequest(request_id="drain", texts=texts), timeout=60)

        resp = await assert_drains(proc, channel, asyncio.create_task(scan()), started)
        assert resp.verdict in (guard_pb2.VERDICT_ALLOW, guard_pb2.VERDICT_REDACT)
        await channel.close()


async def test_sigterm_to_rag_finishes_in_flight_calls(fleet: DevFleet) -> None:
    port = free_port()
    with fleet.extra_service("rag-drain", "rag", port, {"FLOTILLA_RAG_DRAIN_GRACE_S": str(GRACE_S)}) as proc:
        channel = secure_channel(f"127.0.0.1:{port}", fleet.certs["gateway"])
        stub = rag_pb2_grpc.RagStub(channel)
        inputs = [f"Passage {i} about lighthouses, tides and the keepers who watched them. " * 20
                  for i in range(32)]  # ~0.15 s an input on our 2 cores
        started = asyncio.Event()

        async def embed() -> rag_pb2.EmbedResponse:
            started.set()
            return await stub.Embed(rag_pb2.EmbedRequest(request_id="drain", inputs=inputs), timeout=120)

        resp = await assert_drains(proc, channel, asyncio.create_task(embed()), started)
        assert resp.dim > 0 and len(resp.vectors) == len(inputs) * resp.dim * 4
        await channel.close()


async def test_sigterm_to_gateway_lets_the_stream_finish(fleet: DevFleet) -> None:
    name, port = "gateway-drain", free_port()
    with fleet.extra_gateway(name, port) as base:
        proc = fleet.procs[name]
        # Long enough (a few seconds here) that the stream is still running when shutdown begins, even when a
        # loaded machine is slow to schedule this client.
        messages = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper and a storm."}]
        body = {"model": MODEL_NAME, "messages": messages, "max_tokens": 200, "temperature": 0, "stream": True}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth(fleet)) as http:
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                events = sse(r)
                first = await events.__anext__()
                assert first["choices"][0]["delta"]["role"] == "assistant"
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                async with httpx.AsyncClient(timeout=5) as other:  # no new connections while draining
                    with pytest.raises(httpx.ConnectError):
                        await other.get(f"{base}/health")
                rest = [e async for e in events]
        assert rest[-1] == "[DONE]"
        reasons = [c["choices"][0]["finish_reason"] for c in rest[:-1] if c["choices"] and
                   c["choices"][0]["finish_reason"]]
        assert len(reasons) == 1 and reasons[0] in ("length", "stop")
        # uvicorn re-raises the SIGTERM it handled once shut down: the exit status is -15 either way, so the
        # log shows that it waited for the stream and shut down cleanly.
        assert await asyncio.to_thread(proc.wait, 30) in (0, -signal.SIGTERM)
    # The log shows the order: shutdown began, then the stream finished (the access-log line is written when
    # the response ends), then the application shut down. (uvicorn's "Waiting for connections to close" is
    # written only when a connection is still open 0.1 s after shutdown begins, so it is not waited for.)
    lines = log_lines(fleet, name)
    msgs = [e["msg"] for e in lines]
    done = [i for i, e in enumerate(lines) if e["msg"] == "request" and e.get("route") == "/v1/chat/completions"]
    assert len(done) == 1 and lines[done[0]].get("status") == 200, lines
    assert msgs.index("Shutting down") < done[0] < msgs.index("Application shutdown complete."), msgs


# -- an inference replica killed mid-stream ------------------------------------------------------------


def affine_system_prompt(replica: str, others: list[str]) -> str:
    """A system prompt whose requests the router sends to ``replica`` (rendezvous hashing)."""
    for i in range(1000):
        system = f"You are assistant number {i}. Answer plainly."
        key = _affinity([("system", system, ""), ("user", "x", "")])
        if all(_score(key, replica) > _score(key, o) for o in others):
            return system
    raise AssertionError("no affine prompt found")


async def test_replica_killed_mid_stream(fleet: DevFleet) -> None:
    """The client gets an error event and a clean end (the SDK raises APIError), the ledger bills what
    was delivered, the replica is ejected, and the next requests succeed on the other replica — including
    the half-open trial, which fails on the dead replica and is retried on the other before any byte."""
    victim_port, victim_metrics = free_port(), free_port()
    survivor_port = fleet.config.extra_inference_ports[0]
    survivor_metrics = fleet.config.metrics_ports["inference-1"]
    victim_addr, survivor_addr = f"127.0.0.1:{victim_port}", f"127.0.0.1:{survivor_port}"
    system = affine_system_prompt(victim_addr, [survivor_addr])
    messages = [{"role": "system", "content": system}, *LONG]
    gw = "gateway-kill"
    env = {"FLOTILLA_GATEWAY_INFERENCE_TARGETS": f"{victim_addr},{survivor_addr}",
           "FLOTILLA_GATEWAY_EJECT_S": "2", "FLOTILLA_GATEWAY_REFRESH_S": "600"}
    with fleet.extra_service("inference-victim", "inference", victim_port,
                             {"FLOTILLA_INFERENCE_METRICS_PORT": str(victim_metrics)}) as victim, \
            fleet.extra_gateway(gw, free_port(), env) as base:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=fleet.api_key, max_retries=0)
        stream = await client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=1500,
                                                      temperature=0, stream=True)
        assert running(victim_metrics) == 1  # it went to the victim
        chunks = []
        with pytest.raises(openai.APIError) as info:
            async with asyncio.timeout(60):  # an error, not a hang
                async for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) == 8:
                        os.killpg(victim.pid, signal.SIGKILL)  # the replica and its engine die at once
        assert info.value.code == "inference_interrupted"
        assert "incomplete" in info.value.message
        assert len(chunks) >= 8 and not any(c.choices[0].finish_reason for c in chunks)
        row = await ledger_row(fleet, chunks[0].id)
        assert row["status"] == 503 and row["completion_tokens"] >= 7 and row["prompt_tokens"] > 0

        served = scrape_labeled(survivor_metrics, "flotilla_inference_requests_total")
        for _ in range(3):  # the circuit is open: straight to the survivor
            resp = await client.chat.completions.create(model=MODEL_NAME, messages=[messages[0], *HI], max_tokens=3)
            assert resp.choices[0].message.content
        await asyncio.sleep(2.5)  # half-open: one trial goes to the victim, fails, is retried on the survivor
        resp = await client.chat.completions.create(model=MODEL_NAME, messages=[messages[0], *HI], max_tokens=3)
        assert resp.choices[0].message.content
        assert scrape_labeled(survivor_metrics, "flotilla_inference_requests_total") == served + 4

    logs = log_lines(fleet, gw)
    ejected = [e for e in logs if e["msg"] == "inference replica ejected" and e["replica"] == victim_addr]
    assert [e["openings"] for e in ejected] == [1, 2]  # killed mid-stream, then the failed half-open trial
    assert ejected[1]["for_s"] == 4.0  # re-opened for twice as long
    retries = [e for e in logs if e["msg"] == "retrying on another replica"]
    assert [(e["replica"], e["code"]) for e in retries] == [(victim_addr, "UNAVAILABLE")]
    assert any(e["msg"] == "inference stream interrupted" and e["delivered_tokens"] >= 7 for e in logs)
