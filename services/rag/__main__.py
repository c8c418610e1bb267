"""``python -m services.rag``: the RAG gRPC server (mTLS, health, drain on SIGTERM)."""

import asyncio

import asyncpg

from flotilla.grpcserver import serve_until_signal, start_server
from flotilla.telemetry import setup_logging
from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.rag.server import RagServicer
from services.rag.settings import RagSettings


async def main() -> None:
    settings = RagSettings()
    setup_logging("rag", settings.log_level, settings.log_json)
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    servicer = RagServicer(settings, pool)
    svc = await start_server(
        settings.listen_address,
        settings.tls_files(),
        [lambda s: rag_pb2_grpc.add_RagServicer_to_server(servicer, s)],
        [rag_pb2.DESCRIPTOR.services_by_name["Rag"].full_name],
    )
    await svc.set_serving(True)
    await serve_until_signal(svc, settings.drain_grace_s, on_stop=pool.close)


if __name__ == "__main__":
    asyncio.run(main())
