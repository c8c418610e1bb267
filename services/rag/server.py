"""The Rag gRPC servicer."""

from __future__ import annotations

import asyncpg
import grpc

from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.rag.retrieval import retrieve
from services.rag.settings import RagSettings


class RagServicer(rag_pb2_grpc.RagServicer):
    def __init__(self, settings: RagSettings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool

    async def Retrieve(
        self, request: rag_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.RetrieveResponse:
        k = request.k or self.settings.default_k
        if k > self.settings.max_k:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"k must be at most {self.settings.max_k}")
        chunks = await retrieve(
            self.pool, request.tenant_id, request.query, list(request.vector_store_ids), k
        )
        return rag_pb2.RetrieveResponse(
            chunks=[
                rag_pb2.Chunk(
                    text=c.text,
                    score=c.score,
                    source=c.source,
                    file_id=c.file_id,
                    vector_store_id=c.vector_store_id,
                    chunk_index=c.chunk_index,
                )
                for c in chunks
            ]
        )
