"""OpenAI Vector Stores API on the RAG service: stores, their files (attach → background ingestion) and search.

Schemas follow OpenAI's, so ``client.vector_stores.*`` and ``client.vector_stores.files.*`` of the stock
SDK work (including ``create_and_poll``/``upload_and_poll``, which poll the file's ``status``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from flotilla.v1 import rag_pb2
from services.gateway import rag_api
from services.gateway.errors import OpenAIError
from services.gateway.protocol import OpenAIBaseModel

router = APIRouter()

AttributeValue = str | float | bool


class StaticChunking(OpenAIBaseModel):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]


class ChunkingStrategyParam(OpenAIBaseModel):
    type: Literal["auto", "static"]
    static: StaticChunking | None = None

    def to_pb(self) -> rag_pb2.ChunkingStrategy:
        if self.type == "auto":
            return rag_pb2.ChunkingStrategy()
        if self.static is None:
            raise OpenAIError(400, "chunking_strategy.static is required when type is 'static'.",
                              param="chunking_strategy.static", code="missing_required_parameter")
        if self.static.chunk_overlap_tokens > self.static.max_chunk_size_tokens // 2:
            raise OpenAIError(400, "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens.",
                              param="chunking_strategy.static.chunk_overlap_tokens", code="invalid_value")
        return rag_pb2.ChunkingStrategy(
            max_chunk_size_tokens=self.static.max_chunk_size_tokens,
            chunk_overlap_tokens=self.static.chunk_overlap_tokens, set=True,
        )


def chunking_pb(param: ChunkingStrategyParam | None) -> rag_pb2.ChunkingStrategy:
    return param.to_pb() if param is not None else rag_pb2.ChunkingStrategy()


class ExpiresAfter(OpenAIBaseModel):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


class CreateVectorStoreBody(OpenAIBaseModel):
    name: str | None = None
    file_ids: Annotated[list[str], Field(max_length=500)] | None = None
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategyParam | None = None


class UpdateVectorStoreBody(OpenAIBaseModel):
    name: str | None = None
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None


class AttachFileBody(OpenAIBaseModel):
    file_id: str
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: ChunkingStrategyParam | None = None


class RankingOptions(OpenAIBaseModel):
    ranker: Literal["auto", "default-2024-11-15", "none"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class SearchBody(OpenAIBaseModel):
    query: str | Annotated[list[str], Field(min_length=1)]
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None
    rewrite_query: bool | None = None

    def query_text(self) -> str:
        return self.query if isinstance(self.query, str) else " ".join(self.query)


def store_object(s: rag_pb2.VectorStore) -> dict[str, Any]:
    c = s.file_counts
    return {
        "id": s.id, "object": "vector_store", "created_at": s.created_at, "name": s.name,
        "usage_bytes": s.usage_bytes,
        "file_counts": {"in_progress": c.in_progress, "completed": c.completed, "failed": c.failed,
                        "cancelled": c.cancelled, "total": c.total},
        "status": s.status, "last_active_at": s.last_active_at, "metadata": rag_api.loads(s.metadata_json),
        "expires_after": {"anchor": "last_active_at", "days": s.expires_after_days} if s.expires_after_days else None,
        "expires_at": s.expires_at or None,
    }


def store_file_object(f: rag_pb2.VectorStoreFile) -> dict[str, Any]:
    return {
        "id": f.file_id, "object": "vector_store.file", "usage_bytes": f.usage_bytes, "created_at": f.created_at,
        "vector_store_id": f.vector_store_id, "status": f.status,
        "last_error": {"code": f.last_error_code, "message": f.last_error_message} if f.last_error_code else None,
        "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": f.max_chunk_size_tokens,
                                                           "chunk_overlap_tokens": f.chunk_overlap_tokens}},
        "attributes": rag_api.loads(f.attributes_json),
    }


def _stub(request: Request) -> Any:
    return rag_api.rag_stub(request)


@router.post("/v1/vector_stores")
async def create_vector_store(body: CreateVectorStoreBody, request: Request) -> dict[str, Any]:
    msg = rag_pb2.CreateVectorStoreRequest(
        tenant_id=rag_api.tenant_of(request), name=body.name or "", metadata_json=json.dumps(body.metadata or {}),
        file_ids=body.file_ids or [], chunking=chunking_pb(body.chunking_strategy),
        expires_after_days=body.expires_after.days if body.expires_after else 0,
    )
    return store_object(await rag_api.call(_stub(request).CreateVectorStore, msg, rag_api.timeout(request)))


@router.get("/v1/vector_stores")
async def list_vector_stores(
    request: Request, limit: int | None = None, order: str | None = None, after: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    msg = rag_pb2.ListRequest(tenant_id=rag_api.tenant_of(request), limit=rag_api.check_limit(limit),
                              order=rag_api.check_order(order), after=after or "", before=before or "")
    resp = await rag_api.call(_stub(request).ListVectorStores, msg, rag_api.timeout(request))
    return rag_api.page([store_object(s) for s in resp.stores], resp.has_more)


@router.get("/v1/vector_stores/{vector_store_id}")
async def retrieve_vector_store(vector_store_id: str, request: Request) -> dict[str, Any]:
    msg = rag_pb2.VectorStoreRef(tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id)
    return store_object(await rag_api.call(_stub(request).GetVectorStore, msg, rag_api.timeout(request)))


@router.post("/v1/vector_stores/{vector_store_id}")
async def update_vector_store(vector_store_id: str, body: UpdateVectorStoreBody, request: Request) -> dict[str, Any]:
    msg = rag_pb2.UpdateVectorStoreRequest(tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id)
    if body.name is not None:
        msg.name = body.name
    if body.metadata is not None:
        msg.metadata_json = json.dumps(body.metadata)
    if "expires_after" in body.model_fields_set:
        msg.expires_after_days = body.expires_after.days if body.expires_after else 0
    return store_object(await rag_api.call(_stub(request).UpdateVectorStore, msg, rag_api.timeout(request)))


@router.delete("/v1/vector_stores/{vector_store_id}")
async def delete_vector_store(vector_store_id: str, request: Request) -> dict[str, Any]:
    msg = rag_pb2.VectorStoreRef(tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id)
    resp = await rag_api.call(_stub(request).DeleteVectorStore, msg, rag_api.timeout(request))
    return {"id": resp.id, "object": "vector_store.deleted", "deleted": resp.deleted}


@router.post("/v1/vector_stores/{vector_store_id}/files")
async def attach_file(vector_store_id: str, body: AttachFileBody, request: Request) -> dict[str, Any]:
    msg = rag_pb2.AttachFileRequest(
        request_id=request.state.request_id, tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id,
        file_id=body.file_id, attributes_json=json.dumps(body.attributes) if body.attributes is not None else "",
        chunking=chunking_pb(body.chunking_strategy),
    )
    return store_file_object(await rag_api.call(_stub(request).AttachFile, msg, rag_api.timeout(request)))


@router.get("/v1/vector_stores/{vector_store_id}/files")
async def list_store_files(
    vector_store_id: str, request: Request, limit: int | None = None, order: str | None = None,
    after: str | None = None, before: str | None = None, filter: str | None = None,
) -> dict[str, Any]:
    msg = rag_pb2.ListVectorStoreFilesRequest(
        tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id, status=filter or "",
        limit=rag_api.check_limit(limit), order=rag_api.check_order(order), after=after or "", before=before or "",
    )
    resp = await rag_api.call(_stub(request).ListVectorStoreFiles, msg, rag_api.timeout(request))
    return rag_api.page([store_file_object(f) for f in resp.files], resp.has_more)


@router.get("/v1/vector_stores/{vector_store_id}/files/{file_id}")
async def retrieve_store_file(vector_store_id: str, file_id: str, request: Request) -> dict[str, Any]:
    msg = rag_pb2.VectorStoreFileRef(tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id,
                                     file_id=file_id)
    return store_file_object(await rag_api.call(_stub(request).GetVectorStoreFile, msg, rag_api.timeout(request)))


@router.delete("/v1/vector_stores/{vector_store_id}/files/{file_id}")
async def detach_file(vector_store_id: str, file_id: str, request: Request) -> dict[str, Any]:
    msg = rag_pb2.VectorStoreFileRef(tenant_id=rag_api.tenant_of(request), vector_store_id=vector_store_id,
                                     file_id=file_id)
    resp = await rag_api.call(_stub(request).DetachFile, msg, rag_api.timeout(request))
    return {"id": resp.id, "object": "vector_store.file.deleted", "deleted": resp.deleted}


def search_result(c: rag_pb2.Chunk) -> dict[str, Any]:
    return {
        "file_id": c.file_id, "filename": c.source, "score": round(float(c.score), 6),
        "attributes": rag_api.loads(c.attributes_json), "content": [{"type": "text", "text": c.text}],
    }


@router.post("/v1/vector_stores/{vector_store_id}/search")
async def search_vector_store(vector_store_id: str, body: SearchBody, request: Request) -> dict[str, Any]:
    if body.rewrite_query:
        raise OpenAIError(400, "'rewrite_query' is not supported by this deployment.", param="rewrite_query",
                          code="unsupported_parameter")
    ranking = body.ranking_options or RankingOptions()
    msg = rag_pb2.RetrieveRequest(
        request_id=request.state.request_id, tenant_id=rag_api.tenant_of(request), query=body.query_text(),
        vector_store_ids=[vector_store_id], k=body.max_num_results or 10,
        score_threshold=ranking.score_threshold or 0.0,
        filters_json=json.dumps(body.filters) if body.filters else "", check_stores=True,
    )
    resp = await rag_api.call(_stub(request).Retrieve, msg, rag_api.timeout(request))
    return {
        "object": "vector_store.search_results.page",
        "search_query": body.query if isinstance(body.query, list) else [body.query],
        "data": [search_result(c) for c in resp.chunks], "has_more": False, "next_page": None,
    }
