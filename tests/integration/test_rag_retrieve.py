"""RAG's Retrieve over real Postgres + pgvector, served by the real gRPC server with mTLS."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from flotilla.grpcserver import start_server
from flotilla.tls import ensure_dev_certs, secure_channel
from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.rag.server import RagServicer
from services.rag.settings import RagSettings
from tests.conftest import free_port

DOCS = [
    ("t1", "vs_geo", "file_a", "geo.md", 0, "Paris is the capital and largest city of France."),
    ("t1", "vs_geo", "file_a", "geo.md", 1, "Berlin is the capital of Germany."),
    ("t1", "vs_food", "file_b", "food.md", 0, "Croissants are a French pastry eaten in Paris."),
    ("t2", "vs_geo", "file_c", "secret.md", 0, "Paris office codes are confidential to tenant two."),
]


@pytest.fixture(scope="module")
async def rag_stub(postgres_url: str, tmp_path_factory: pytest.TempPathFactory):
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("TRUNCATE rag_chunks")
    await conn.executemany(
        "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        DOCS,
    )
    await conn.close()
    certs = ensure_dev_certs(Path(tmp_path_factory.mktemp("certs")))
    settings = RagSettings(database_url=postgres_url, port=free_port())
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    servicer = RagServicer(settings, pool)
    svc = await start_server(settings.listen_address, certs["rag"],
                             [lambda s: rag_pb2_grpc.add_RagServicer_to_server(servicer, s)], ["flotilla.v1.Rag"])
    channel = secure_channel(settings.listen_address, certs["gateway"])
    yield rag_pb2_grpc.RagStub(channel)
    await channel.close()
    await svc.server.stop(0)
    await pool.close()


async def test_no_store_named_returns_no_chunks(rag_stub) -> None:
    resp = await rag_stub.Retrieve(rag_pb2.RetrieveRequest(tenant_id="t1", query="capital of France"))
    assert list(resp.chunks) == []


async def test_ranked_chunks_from_named_stores(rag_stub) -> None:
    resp = await rag_stub.Retrieve(
        rag_pb2.RetrieveRequest(
            tenant_id="t1", query="What is the capital of France?", vector_store_ids=["vs_geo"], k=5
        )
    )
    texts = [c.text for c in resp.chunks]
    assert texts[0] == DOCS[0][5]
    assert all(c.vector_store_id == "vs_geo" for c in resp.chunks)
    assert resp.chunks[0].source == "geo.md" and resp.chunks[0].file_id == "file_a"
    scores = [c.score for c in resp.chunks]
    assert scores == sorted(scores, reverse=True)


async def test_tenant_scoping_and_k(rag_stub) -> None:
    resp = await rag_stub.Retrieve(
        rag_pb2.RetrieveRequest(tenant_id="t1", query="Paris", vector_store_ids=["vs_geo", "vs_food"], k=1)
    )
    assert len(resp.chunks) == 1
    resp = await rag_stub.Retrieve(
        rag_pb2.RetrieveRequest(tenant_id="t1", query="Paris office codes", vector_store_ids=["vs_geo"], k=10)
    )
    assert "confidential" not in " ".join(c.text for c in resp.chunks)
