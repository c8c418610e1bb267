"""``python -m services.rag``: the RAG gRPC server (mTLS, health, drain on SIGTERM) and its ingestion workers."""

import asyncio

import asyncpg

from flotilla.embeddings import DIM, MiniLM, OpenAIEmbeddings, TextEmbedder
from flotilla.grpcserver import serve_until_signal, start_server
from flotilla.telemetry import setup_logging
from flotilla.tracing import setup_tracing, shutdown_tracing
from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.rag import metrics
from services.rag.ingest import Ingestor
from services.rag.server import RagServicer
from services.rag.settings import RagSettings


def make_embedder(settings: RagSettings) -> tuple[TextEmbedder, MiniLM | None]:
    """The configured embedder, and the MiniLM whose tokenizer counts chunk tokens (loaded either way)."""
    if settings.embedding_backend == "openai":
        if not settings.embedding_url or not settings.embedding_model:
            raise SystemExit("FLOTILLA_RAG_EMBEDDING_URL and _EMBEDDING_MODEL are required with the openai backend")
        return OpenAIEmbeddings(settings.embedding_url, settings.embedding_model, DIM,
                                api_key=settings.embedding_api_key), None
    model = MiniLM(threads=settings.embed_threads, batch_size=settings.embed_batch_size,
                   max_windows=settings.embed_max_windows)
    return model, model


async def main() -> None:
    settings = RagSettings()
    setup_logging("rag", settings.log_level, settings.log_json)
    setup_tracing("rag")  # OTEL_TRACES_EXPORTER unset: off
    metrics.serve(settings.metrics_port, settings.host)
    embedder, minilm = make_embedder(settings)  # the schema stores vector(384): a remote model must match
    if minilm is None:
        from tokenizers import Tokenizer

        from flotilla.embeddings import model_files

        tokenizer = Tokenizer.from_file(str(model_files()[1]))
    else:
        tokenizer = minilm.tokenizer
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    ingestor = Ingestor(pool, embedder, tokenizer, workers=settings.ingest_workers, lease_s=settings.ingest_lease_s,
                        poll_s=settings.ingest_poll_s, batch_size=settings.embed_batch_size)
    servicer = RagServicer(settings, pool, embedder, ingestor)
    svc = await start_server(
        settings.listen_address,
        settings.tls_files(),
        [lambda s: rag_pb2_grpc.add_RagServicer_to_server(servicer, s)],
        [rag_pb2.DESCRIPTOR.services_by_name["Rag"].full_name],
    )
    ingestor.start()  # also resumes attachments left in progress by a stopped replica

    async def stop() -> None:
        await ingestor.stop()
        await pool.close()

    await svc.set_serving(True)
    await serve_until_signal(svc, settings.drain_grace_s, on_stop=stop)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        shutdown_tracing()
