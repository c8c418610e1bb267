"""Files, vector stores, ingestion, search and embeddings: the stock OpenAI SDK → the gateway's RAG routes
(in-process ASGI) → the real RAG gRPC server over mTLS (real MiniLM, real ingestion workers) → real Postgres."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import openai
import pytest
from fastapi import FastAPI

from flotilla.embeddings import MiniLM, OpenAIEmbeddings
from flotilla.grpcserver import start_server
from flotilla.tls import ensure_dev_certs, secure_channel
from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.gateway import rag_routes
from services.gateway.chat import ChatPipeline
from services.gateway.errors import install_handlers
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Upstreams
from services.rag.ingest import Ingestor
from services.rag.server import RagServicer
from services.rag.settings import RagSettings
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(300)

DOCS = {
    "lighthouse.md": "# The Lighthouse\n\nThe Korvath lighthouse was built in 1867 on the granite cliffs of Emberhold. "
    "Its lamp burns whale oil and can be seen forty kilometres out to sea.",
    "bakery.html": "<html><head><title>Bakery</title><script>var x = 'ignored';</script></head><body>"
    "<h1>Opening hours</h1><p>The Marlow bakery opens at 6&nbsp;am and sells sourdough rye bread.</p></body></html>",
    "volcano.txt": "Mount Tessaro erupted in 1921. The volcano's ash cloud closed the harbour of Quillport for "
    "three weeks, and the eruption is remembered by a festival every spring.",
}


def make_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text`` (Helvetica), with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
async def rag(postgres_url: str, tmp_path_factory: pytest.TempPathFactory, minilm: MiniLM):
    """The real RAG server (MiniLM embedder, one ingestion worker) and a gRPC stub to it over mTLS."""
    certs = ensure_dev_certs(Path(tmp_path_factory.mktemp("certs")))
    settings = RagSettings(database_url=postgres_url, port=free_port(), max_file_bytes=200_000)
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4)
    ingestor = Ingestor(pool, minilm, minilm.tokenizer, poll_s=0.5)
    servicer = RagServicer(settings, pool, minilm, ingestor)
    svc = await start_server(settings.listen_address, certs["rag"],
                             [lambda s: rag_pb2_grpc.add_RagServicer_to_server(servicer, s)], ["flotilla.v1.Rag"])
    ingestor.start()
    channel = secure_channel(settings.listen_address, certs["gateway"])
    yield rag_pb2_grpc.RagStub(channel), pool, ingestor
    await ingestor.stop()
    await channel.close()
    await svc.server.stop(0)
    await pool.close()


def gateway(stub, tenant: str) -> FastAPI:
    """The gateway's RAG routes with the gateway's middleware and error handlers, for one tenant."""
    settings = GatewaySettings(tenant_id=tenant)
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,
                       path_limits=rag_routes.body_limits())
    app.include_router(rag_routes.router)
    install_handlers(app)
    up = Upstreams(inference=None, guard=None, rag=stub)  # type: ignore[arg-type]
    app.state.upstreams = up
    app.state.chat = ChatPipeline(settings, up)
    return app


def sdk(app: FastAPI) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
    return openai.AsyncOpenAI(base_url="http://gateway/v1", api_key="unused", http_client=http, max_retries=0)


@pytest.fixture(scope="module")
async def client(rag) -> openai.AsyncOpenAI:
    return sdk(gateway(rag[0], "t-alpha"))


async def wait_done(client: openai.AsyncOpenAI, store_id: str, file_id: str, timeout_s: float = 60):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        f = await client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if f.status != "in_progress" or asyncio.get_running_loop().time() > deadline:
            return f
        await asyncio.sleep(0.2)


async def chunk_count(pool: asyncpg.Pool, store_id: str, file_id: str | None = None) -> int:
    if file_id is None:
        return await pool.fetchval("SELECT count(*) FROM rag_chunks WHERE vector_store_id = $1", store_id)
    return await pool.fetchval("SELECT count(*) FROM rag_chunks WHERE vector_store_id = $1 AND file_id = $2",
                               store_id, file_id)


async def test_files_upload_extract_list_content_delete(client) -> None:
    uploaded = {}
    for name, text in DOCS.items():
        uploaded[name] = await client.files.create(file=(name, text.encode()), purpose="assistants")
    pdf = await client.files.create(file=("report.pdf", make_pdf("Quarterly revenue of Zentrix rose 12 percent")),
                                    purpose="user_data")
    f = uploaded["bakery.html"]
    assert f.object == "file" and f.id.startswith("file-") and f.bytes == len(DOCS["bakery.html"].encode())
    assert (await client.files.retrieve(f.id)).filename == "bakery.html"
    assert (await client.files.content(f.id)).content == DOCS["bakery.html"].encode()  # bytes kept as sent

    listed = [x.id async for x in client.files.list(limit=2, order="asc")]  # the SDK follows the cursor
    assert listed[-4:] == [uploaded["lighthouse.md"].id, uploaded["bakery.html"].id, uploaded["volcano.txt"].id,
                           pdf.id]
    assert [x.id async for x in client.files.list(purpose="user_data")] == [pdf.id]

    deleted = await client.files.delete(pdf.id)
    assert deleted.deleted and deleted.id == pdf.id
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(pdf.id)


async def test_unsupported_and_oversized_files_are_refused(client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.files.create(file=("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), purpose="assistants")
    assert info.value.body["code"] == "unsupported_file" and "Supported" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        await client.files.create(file=("empty.txt", b"   \n"), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as info:
        await client.files.create(file=("broken.pdf", b"%PDF-1.4 garbage"), purpose="assistants")
    assert info.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError) as info:  # the RAG service's own limit (200 kB here)
        await client.files.create(file=("big.txt", b"word " * 50_000), purpose="assistants")
    assert info.value.body["code"] == "file_too_large"
    with pytest.raises(openai.BadRequestError) as info:
        await client.files.create(file=("a.txt", b"hello"), purpose="fine-tune")
    assert info.value.body["param"] == "purpose"


async def test_store_ingests_searches_with_filters_reattaches_and_cleans_up(client, rag) -> None:
    _, pool, _ = rag
    ids = {name: (await client.files.create(file=(name, text.encode()), purpose="assistants")).id
           for name, text in DOCS.items()}
    long_text = " ".join(f"Sentence {i} talks about the harbour tides of Quillport." for i in range(120))
    ids["tides.txt"] = (await client.files.create(file=("tides.txt", long_text.encode()), purpose="assistants")).id

    store = await client.vector_stores.create(
        name="handbook", file_ids=[ids["lighthouse.md"], ids["bakery.html"]], metadata={"team": "docs"},
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}},
    )
    assert store.object == "vector_store" and store.name == "handbook" and store.metadata == {"team": "docs"}
    assert store.file_counts.total == 2
    for name in ("volcano.txt", "tides.txt"):
        attached = await client.vector_stores.files.create(
            vector_store_id=store.id, file_id=ids[name], attributes={"kind": name.split(".")[0], "year": 1921},
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}},
        )
        assert attached.status in ("in_progress", "completed") and attached.object == "vector_store.file"
    for file_id in ids.values():
        done = await wait_done(client, store.id, file_id)
        assert done.status == "completed", done.last_error
    store = await client.vector_stores.retrieve(store.id)
    assert store.status == "completed" and store.file_counts.completed == 4 and store.file_counts.in_progress == 0
    assert store.usage_bytes > 0
    tides_chunks = await chunk_count(pool, store.id, ids["tides.txt"])
    assert tides_chunks > 3  # ~1,400 tokens in 100-token windows every 50 tokens
    spans = await pool.fetch("SELECT start_char, end_char, text FROM rag_chunks WHERE file_id = $1 "
                             "ORDER BY chunk_index", ids["tides.txt"])
    assert all(long_text[s["start_char"]:s["end_char"]] == s["text"] for s in spans)
    assert spans[1]["start_char"] < spans[0]["end_char"]  # windows overlap

    page = await client.vector_stores.search(store.id, query="When was the lighthouse built?", max_num_results=3)
    results = list(page.data)
    assert results[0].filename == "lighthouse.md" and results[0].file_id == ids["lighthouse.md"]
    assert "1867" in results[0].content[0].text
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    # Meaning, not words: no query word appears in the bakery page.
    page = await client.vector_stores.search(store.id, query="what time can I buy a loaf in the morning")
    assert page.data[0].filename == "bakery.html"
    # Attribute filters: only the files whose attributes match.
    page = await client.vector_stores.search(store.id, query="Quillport harbour",
                                             filters={"type": "eq", "key": "kind", "value": "volcano"})
    assert {r.filename for r in page.data} == {"volcano.txt"}
    assert page.data[0].attributes == {"kind": "volcano", "year": 1921}
    page = await client.vector_stores.search(
        store.id, query="Quillport", filters={"type": "and", "filters": [
            {"type": "gte", "key": "year", "value": 1900}, {"type": "ne", "key": "kind", "value": "volcano"}]})
    assert {r.filename for r in page.data} == {"tides.txt"}
    page = await client.vector_stores.search(store.id, query="lighthouse", ranking_options={"score_threshold": 0.99})
    assert all(r.score >= 0.99 for r in page.data)

    listed = [f.id async for f in client.vector_stores.files.list(vector_store_id=store.id, limit=2)]
    assert sorted(listed) == sorted(ids.values())
    assert [f.id async for f in client.vector_stores.files.list(vector_store_id=store.id, filter="failed")] == []

    # Re-attaching replaces the chunks instead of adding to them.
    again = await client.vector_stores.files.create(vector_store_id=store.id, file_id=ids["tides.txt"])
    assert again.status == "in_progress"
    assert (await wait_done(client, store.id, ids["tides.txt"])).status == "completed"
    assert (await client.vector_stores.files.retrieve(ids["tides.txt"], vector_store_id=store.id)).attributes == {
        "kind": "tides", "year": 1921}
    n = await chunk_count(pool, store.id, ids["tides.txt"])
    assert n == await pool.fetchval("SELECT count(DISTINCT chunk_index) FROM rag_chunks WHERE file_id = $1",
                                    ids["tides.txt"])
    assert n < tides_chunks  # the default 800/400 chunking makes fewer chunks than 100/50

    # Detaching drops the file's chunks; deleting a file drops them from every store.
    await client.vector_stores.files.delete(ids["volcano.txt"], vector_store_id=store.id)
    assert await chunk_count(pool, store.id, ids["volcano.txt"]) == 0
    await client.files.delete(ids["bakery.html"])
    assert await chunk_count(pool, store.id, ids["bakery.html"]) == 0
    assert (await client.vector_stores.retrieve(store.id)).file_counts.total == 2
    deleted = await client.vector_stores.delete(store.id)
    assert deleted.deleted and deleted.object == "vector_store.deleted"
    assert await chunk_count(pool, store.id) == 0
    with pytest.raises(openai.NotFoundError):
        await client.vector_stores.search(store.id, query="lighthouse")


async def test_tenants_see_only_their_own(client, rag) -> None:
    other = sdk(gateway(rag[0], "t-beta"))
    f = await client.files.create(file=("secret.md", b"The vault code of Alpha Corp is 4711."), purpose="assistants")
    store = await client.vector_stores.create(name="alpha", file_ids=[f.id])
    assert (await wait_done(client, store.id, f.id)).status == "completed"
    with pytest.raises(openai.NotFoundError):
        await other.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        await other.files.content(f.id)
    with pytest.raises(openai.NotFoundError):
        await other.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        await other.vector_stores.search(store.id, query="vault code")
    with pytest.raises(openai.NotFoundError):
        await other.vector_stores.files.create(vector_store_id=store.id, file_id=f.id)
    assert f.id not in [x.id async for x in other.files.list()]
    assert store.id not in [s.id async for s in other.vector_stores.list()]
    # Chat retrieval is tenant-scoped in the RAG service as well.
    resp = await rag[0].Retrieve(rag_pb2.RetrieveRequest(tenant_id="t-beta", query="vault code",
                                                         vector_store_ids=[store.id]))
    assert list(resp.chunks) == []
    with pytest.raises(openai.NotFoundError):
        await other.files.delete(f.id)
    assert (await client.files.retrieve(f.id)).id == f.id


async def test_failed_ingestion_reports_last_error(rag, postgres_url: str, minilm: MiniLM) -> None:
    """A remote embedding server that is down: the attachment fails with the reason, the store counts it."""
    stub, pool, _ = rag
    dead = OpenAIEmbeddings(f"http://127.0.0.1:{free_port()}/v1", "nope", 384, timeout_s=2)
    ingestor = Ingestor(pool, dead, minilm.tokenizer, poll_s=0.2)
    tenant = "t-failing"
    f = await stub.UploadFile(rag_pb2.UploadFileRequest(tenant_id=tenant, filename="a.txt", purpose="assistants",
                                                        content=b"Some text to embed."))
    vs = await stub.CreateVectorStore(rag_pb2.CreateVectorStoreRequest(tenant_id=tenant, name="x"))
    # Attach directly in the database queue, so the shared fixture's working ingestor does not take it first.
    await pool.execute(
        "INSERT INTO rag_vector_store_files (vector_store_id, file_id, tenant_id, status, max_chunk_tokens, "
        "chunk_overlap_tokens, lease_until) VALUES ($1, $2, $3, 'in_progress', 800, 400, now() + interval '1 hour')",
        vs.id, f.id, tenant)
    await pool.execute("UPDATE rag_vector_store_files SET lease_until = NULL WHERE file_id = $1", f.id)
    job = await ingestor._claim()
    while job is not None and job.file_id != f.id:  # another test's job: hand it back untouched
        await pool.execute("UPDATE rag_vector_store_files SET lease_until = NULL WHERE file_id = $1", job.file_id)
        job = await ingestor._claim()
    assert job is not None
    await ingestor.process(job)
    got = await stub.GetVectorStoreFile(rag_pb2.VectorStoreFileRef(tenant_id=tenant, vector_store_id=vs.id,
                                                                   file_id=f.id))
    assert got.status == "failed" and got.last_error_code == "server_error" and "ConnectError" in got.last_error_message
    counts = (await stub.GetVectorStore(rag_pb2.VectorStoreRef(tenant_id=tenant, vector_store_id=vs.id))).file_counts
    assert (counts.failed, counts.completed, counts.total) == (1, 0, 1)
    dead.close()


async def test_embeddings_float_base64_and_refusals(client, minilm: MiniLM) -> None:
    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Interest rates rose in March."]
    resp = await client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the SDK asks for base64
    vectors = np.array([d.embedding for d in resp.data])
    assert vectors.shape == (3, 384) and [d.index for d in resp.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert resp.usage.prompt_tokens == sum(minilm.count_tokens(texts)) and resp.model == "all-MiniLM-L6-v2"
    raw = await client.embeddings.with_raw_response.create(model="all-MiniLM-L6-v2", input="hello",
                                                           encoding_format="float", dimensions=384)
    body = raw.http_response.json()
    assert isinstance(body["data"][0]["embedding"], list) and len(body["data"][0]["embedding"]) == 384
    raw64 = await client.embeddings.with_raw_response.create(model="all-MiniLM-L6-v2", input="hello",
                                                             encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(raw64.http_response.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, body["data"][0]["embedding"], atol=1e-6)
    assert np.allclose(decoded, minilm.embed(["hello"])[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model="all-MiniLM-L6-v2", input="hello", dimensions=128)
    assert info.value.body["param"] == "dimensions"
    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model="text-embedding-3-small", input="hello")
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="all-MiniLM-L6-v2", input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="all-MiniLM-L6-v2", input=["ok", ""])
