"""One chat request with RAG is one trace across the four services.

The real servers run in this process, each on its own port with mutual TLS: the gateway app (its lifespan
opens the real mTLS channels and the Postgres pool), guard (real scanners), RAG (real Postgres full-text
retrieval) and inference (vLLM's AsyncLLM with SmolLM2). Tracing is on with OpenTelemetry's in-memory
exporter; the trace context can only reach the servers through the W3C ``traceparent`` in gRPC metadata, so
a server span in the gateway's trace proves the propagation over the wire.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from flotilla import tracing
from flotilla.grpcserver import start_server
from flotilla.tls import ensure_dev_certs
from flotilla.v1 import guard_pb2_grpc, inference_pb2_grpc, rag_pb2_grpc
from services.gateway.keys import create_key
from tests.conftest import MODEL_NAME, free_port

TENANT = f"trace-{uuid.uuid4().hex[:8]}"
STORE = f"vs_trace_{uuid.uuid4().hex[:8]}"
CHUNK = "The Korvath lighthouse keeper is named Ilse Marrow and she lights the lamp at dusk."
QUESTION = "Who keeps the Korvath lighthouse?"


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def traced_fleet(postgres_url: str, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        async for running in _traced_fleet(postgres_url, model_dir, tmp_path_factory.mktemp("traced"), monkeypatch):
            yield running


async def _traced_fleet(postgres_url: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings
    from services.guard.server import GuardServicer
    from services.guard.settings import GuardSettings
    from services.inference.engine import build_engine, configure_environment
    from services.inference.server import InferenceServicer
    from services.inference.settings import InferenceSettings
    from services.rag.server import RagServicer
    from services.rag.settings import RagSettings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", tempfile.mkdtemp(prefix="fl-rpc-"))
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("test", exporter=exporter, simple=True)  # before any channel or server exists
    certs = ensure_dev_certs(tmp_path / "certs")

    conn = await asyncpg.connect(postgres_url)
    await conn.execute(
        "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text) "
        "VALUES ($1, $2, 'file_trace', 'korvath.md', 0, $3)", TENANT, STORE, CHUNK,
    )
    _, api_key = await create_key(conn, f"trace-{uuid.uuid4().hex[:6]}", tenant_id=TENANT)
    await conn.close()

    servers, cleanups = [], []
    try:
        # vLLM first: its engine process starts before this process runs any gRPC server (as in production)
        inf_settings = InferenceSettings(model=str(model_dir), served_model_name=MODEL_NAME, port=free_port(),
                                         metrics_port=0, dtype="bfloat16", enforce_eager=True, max_model_len=2048,
                                         cpu_kvcache_space_gib=1)
        configure_environment(inf_settings)
        engine = build_engine(inf_settings)
        cleanups.append(engine.shutdown)
        guard_settings = GuardSettings(port=free_port(), metrics_port=0)
        guard = await asyncio.to_thread(GuardServicer, guard_settings)
        cleanups.append(guard.close)
        servers.append(await start_server(guard_settings.listen_address, certs["guard"],
                                          [lambda s: guard_pb2_grpc.add_GuardServicer_to_server(guard, s)],
                                          ["flotilla.v1.Guard"]))

        rag_settings = RagSettings(database_url=postgres_url, port=free_port(), metrics_port=0)
        pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
        rag = RagServicer(rag_settings, pool)  # no embedder: full-text retrieval
        servers.append(await start_server(rag_settings.listen_address, certs["rag"],
                                          [lambda s: rag_pb2_grpc.add_RagServicer_to_server(rag, s)],
                                          ["flotilla.v1.Rag"]))

        inference = InferenceServicer(inf_settings, engine)
        servers.append(await start_server(
            inf_settings.listen_address, certs["inference"],
            [lambda s: inference_pb2_grpc.add_InferenceServicer_to_server(inference, s)], ["flotilla.v1.Inference"]))
        for svc in servers:
            await svc.set_serving(True)

        gw = certs["gateway"]
        settings = GatewaySettings(
            port=free_port(), FLOTILLA_GATEWAY_INFERENCE_TARGETS=inf_settings.listen_address,  # fields with aliases
            guard_target=guard_settings.listen_address, rag_target=rag_settings.listen_address,
            tls_ca=gw.ca, tls_cert=gw.cert, tls_key=gw.key, DATABASE_URL=postgres_url,
            ledger_spool=str(tmp_path / "spool.jsonl"), tenant_id=TENANT, ready_cache_s=0,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await _wait_for(lambda: app.state.access.keys.loaded.is_set())
            for _ in range(60):  # /readyz: the first ListModels may miss its 2 s deadline on a busy machine
                ready, state = await app.state.readiness.check()
                if ready:
                    break
                await asyncio.sleep(1)
            if not ready:
                from flotilla.v1 import inference_pb2
                probes = []
                for replica in app.state.upstreams.inference.replicas.values():
                    try:
                        probes.append(await replica.stub.ListModels(inference_pb2.ListModelsRequest(), timeout=10))
                    except Exception as exc:
                        probes.append(repr(exc))
                state["probes"] = probes
            assert ready, state
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=300,
                                     headers={"authorization": f"Bearer {api_key}"})
            yield http, exporter
            await http.aclose()
    finally:
        tracing.disable_tracing()
        for svc in servers:
            await svc.server.stop(0)
        for cleanup in cleanups:
            cleanup()
        if "pool" in locals():
            await pool.close()


def _rpc_service(span) -> str:
    return str(span.attributes.get("rpc.service", ""))


async def _one_trace(exporter, request_id: str, methods: set[str]) -> tuple[object, list]:
    """The gateway's server span of the request and every span of its trace (waiting for the servers' spans of
    ``methods``: a streamed request's output scan ends after the response, when the gateway half-closes it)."""
    def gateway_span():
        return next((s for s in exporter.get_finished_spans()
                     if s.attributes.get("flotilla.request_id") == request_id and s.name.startswith("POST ")), None)

    await _wait_for(lambda: gateway_span() is not None)
    root = gateway_span()
    assert root is not None, [s.name for s in exporter.get_finished_spans()]

    def in_trace():
        return [s for s in exporter.get_finished_spans() if s.context.trace_id == root.context.trace_id]

    await _wait_for(lambda: methods <= {str(s.attributes.get("rpc.method")) for s in in_trace()
                                        if s.kind.name == "SERVER" and _rpc_service(s)})
    return root, in_trace()


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_one_chat_request_with_rag_is_one_trace_across_all_four_services(traced_fleet, stream: bool) -> None:
    http, exporter = traced_fleet
    exporter.clear()
    request_id = f"req_trace_{uuid.uuid4().hex[:8]}"
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12,
            "temperature": 0, "vector_store_ids": [STORE], "stream": stream}
    r = await http.post("/v1/chat/completions", json=body, headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    assert r.headers["x-flotilla-rag-chunks"] == "1"  # RAG answered, with our passage

    output_scan = "ScanOutputStream" if stream else "ScanOutput"
    root, spans = await _one_trace(exporter, request_id, {"ScanInput", "Retrieve", "ScanRetrieved", "Generate",
                                                          output_scan})
    servers = [s for s in spans if s.kind.name == "SERVER" and _rpc_service(s)]
    methods = sorted(str(s.attributes.get("rpc.method")) for s in servers)
    assert methods == sorted(["ScanInput", "Retrieve", "ScanRetrieved", "Generate", output_scan]), methods
    # gateway -> guard (input) -> RAG -> guard (retrieved) -> inference -> guard (output), in that order
    order = [str(s.attributes["rpc.method"]) for s in sorted(servers, key=lambda s: s.start_time)]
    assert order == ["ScanInput", "Retrieve", "ScanRetrieved", "Generate", output_scan], order
    by_id = {s.context.span_id: s for s in spans}
    for server in servers:  # each server span continues a client span of the gateway, received over the wire
        assert server.parent is not None and server.parent.is_remote, server.name
        client = by_id[server.parent.span_id]
        assert client.kind.name == "CLIENT"
        node = client
        while node.parent is not None:  # ... which hangs under the request's server span
            node = by_id[node.parent.span_id]
        assert node is root
    # every span recorded for this request belongs to this one trace (no orphan traces)
    everything = exporter.get_finished_spans()
    assert {s.context.trace_id for s in everything if s.start_time >= root.start_time
            and s.end_time <= root.end_time} == {root.context.trace_id}

    attrs = root.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == MODEL_NAME
    assert attrs["gen_ai.request.max_tokens"] == 12 and attrs["gen_ai.request.temperature"] == 0
    assert attrs["gen_ai.usage.input_tokens"] > 0 and 0 < attrs["gen_ai.usage.output_tokens"] <= 12
    assert attrs["gen_ai.response.id"].startswith("chatcmpl-")
    assert list(attrs["gen_ai.response.finish_reasons"]) in (["length"], ["stop"])
    (generate,) = [s for s in servers if s.attributes["rpc.method"] == "Generate"]
    g = generate.attributes
    assert g["gen_ai.operation.name"] == "chat" and g["gen_ai.request.model"] == MODEL_NAME
    assert g["gen_ai.request.max_tokens"] == 12 and g["gen_ai.request.temperature"] == 0
    assert g["gen_ai.usage.input_tokens"] == attrs["gen_ai.usage.input_tokens"]
    assert g["gen_ai.usage.output_tokens"] == attrs["gen_ai.usage.output_tokens"]
    assert list(g["gen_ai.response.finish_reasons"]) == list(attrs["gen_ai.response.finish_reasons"])
    assert g["gen_ai.response.id"].startswith(request_id)
    assert QUESTION not in str({k: v for s in spans for k, v in s.attributes.items()})  # no prompt text
