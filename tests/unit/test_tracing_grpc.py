"""W3C trace context over gRPC metadata between a real ``grpc.aio`` client and server with mutual TLS
(flotilla/tracing.py's interceptors on flotilla.tls channels and flotilla.grpcserver servers), in-memory exporter.
The four-service trace with real guard, RAG and vLLM is tests/integration/test_tracing.py."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla import tracing
from flotilla.grpcserver import start_server
from flotilla.tls import ensure_dev_certs, secure_channel
from tests.conftest import free_port


def _identity(x: bytes) -> bytes:
    return x


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"echo:" + request


async def _count(request: bytes, context: grpc.aio.ServicerContext):
    for i in range(int(request)):
        yield str(i).encode()


async def _fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_trailing_metadata((("flotilla-error-code", "model_not_found"),))
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b""


HANDLER = grpc.method_handlers_generic_handler("test.Echo", {
    "Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity),
    "Count": grpc.unary_stream_rpc_method_handler(_count, _identity, _identity),
    "Fail": grpc.unary_unary_rpc_method_handler(_fail, _identity, _identity),
})


@pytest.fixture
async def traced(tmp_path: Path):
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("unit", exporter=exporter, simple=True)
    certs = ensure_dev_certs(tmp_path / "certs")
    address = f"127.0.0.1:{free_port()}"
    try:
        svc = await start_server(address, certs["guard"], [lambda s: s.add_generic_rpc_handlers((HANDLER,))],
                                 ["test.Echo"])
        await svc.set_serving(True)
        channel = secure_channel(address, certs["gateway"])
        yield channel, exporter
        await channel.close()
        await svc.server.stop(0)
    finally:
        tracing.disable_tracing()


async def test_calls_inside_a_span_continue_its_trace_on_the_server(traced) -> None:
    channel, exporter = traced
    echo = channel.unary_unary("/test.Echo/Echo", _identity, _identity)
    count = channel.unary_stream("/test.Echo/Count", _identity, _identity)
    fail = channel.unary_unary("/test.Echo/Fail", _identity, _identity)
    with tracing.tracer("test").start_as_current_span("request") as root:
        assert await echo(b"hi", timeout=5) == b"echo:hi"
        call = count(b"3", timeout=5)  # read() as the gateway's Generation does
        got = []
        while (msg := await call.read()) is not grpc.aio.EOF:
            got.append(msg)
        assert got == [b"0", b"1", b"2"]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fail(b"x", timeout=5)
        # status and trailers reach the caller unchanged through the interceptors
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert dict(info.value.trailing_metadata())["flotilla-error-code"] == "model_not_found"
    trace_id = root.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    servers = {s.attributes["rpc.method"]: s for s in spans if s.kind.name == "SERVER"}
    assert set(servers) == {"Echo", "Count", "Fail"}
    by_id = {s.context.span_id: s for s in spans}
    for server in servers.values():
        assert server.context.trace_id == trace_id
        assert server.parent.is_remote  # arrived in the metadata, not through this process's context
        client = by_id[server.parent.span_id]
        assert client.kind.name == "CLIENT" and client.parent.span_id == root.get_span_context().span_id
    assert servers["Fail"].attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert by_id[servers["Fail"].parent.span_id].status.status_code.name == "ERROR"


async def test_health_checks_and_calls_outside_a_span_make_no_traces(traced) -> None:
    channel, exporter = traced
    echo = channel.unary_unary("/test.Echo/Echo", _identity, _identity)
    assert await echo(b"background", timeout=5) == b"echo:background"
    with tracing.tracer("test").start_as_current_span("request"):
        resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert [s.name for s in exporter.get_finished_spans()] == ["request"]
