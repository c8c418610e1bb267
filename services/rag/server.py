"""The Rag gRPC servicer: files, vector stores, background ingestion, embeddings and hybrid retrieval."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc
import numpy as np

from flotilla.embeddings import MINILM_ALIASES, TextEmbedder
from flotilla.grpcerrors import abort
from flotilla.v1 import rag_pb2, rag_pb2_grpc
from services.rag import chunking, filters, metrics, store
from services.rag.extract import UnsupportedFile, extract
from services.rag.ingest import Ingestor
from services.rag.retrieval import RetrievalParams, matching_files, retrieve
from services.rag.settings import RagSettings

log = logging.getLogger(__name__)

R = TypeVar("R")
Ctx = grpc.aio.ServicerContext
Handler = Callable[[Any, Any, Ctx], Awaitable[R]]


class BadRequest(ValueError):
    def __init__(self, message: str, param: str = "", code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def _rpc(fn: Handler[R]) -> Handler[R]:
    """Map domain errors to gRPC statuses with OpenAI's code/param in the trailers."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await fn(self, request, context)
        except store.NotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc), code="not_found")
        except UnsupportedFile as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), code="unsupported_file", param="file")
        except filters.FilterError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filters: {exc}", code="invalid_value",
                        param="filters")
        except BadRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), code=exc.code, param=exc.param)
        except asyncpg.DataError as exc:  # a value Postgres cannot take (NUL byte, out-of-range number, ...)
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"Invalid value: {exc.__class__.__name__}",
                        code="invalid_value")
        raise AssertionError("unreachable: abort raises")

    return wrapper


def _json(text: str, param: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"'{param}' is not valid JSON: {exc}", param=param) from None


def file_pb(row: asyncpg.Record) -> rag_pb2.FileInfo:
    return rag_pb2.FileInfo(
        id=row["id"], filename=row["filename"], purpose=row["purpose"], bytes=row["bytes"],
        created_at=store.ts(row["created_at"]), content_type=row["content_type"], format=row["format"],
    )


def store_pb(row: asyncpg.Record) -> rag_pb2.VectorStore:
    counts = rag_pb2.FileCounts(
        in_progress=row["in_progress"], completed=row["completed"], failed=row["failed"],
        cancelled=row["cancelled"],
    )
    counts.total = counts.in_progress + counts.completed + counts.failed + counts.cancelled
    days = row["expires_after_days"]
    expires_at = row["last_active_at"] + dt.timedelta(days=days) if days else None
    if expires_at is not None and expires_at < dt.datetime.now(dt.UTC):
        status = "expired"
    else:
        status = "in_progress" if counts.in_progress else "completed"
    return rag_pb2.VectorStore(
        id=row["id"], name=row["name"], created_at=store.ts(row["created_at"]),
        last_active_at=store.ts(row["last_active_at"]), usage_bytes=row["usage_bytes"], file_counts=counts,
        status=status, metadata_json=row["metadata"], expires_after_days=days or 0,
        expires_at=store.ts(expires_at),
    )


def attachment_pb(row: asyncpg.Record) -> rag_pb2.VectorStoreFile:
    return rag_pb2.VectorStoreFile(
        file_id=row["file_id"], vector_store_id=row["vector_store_id"], created_at=store.ts(row["created_at"]),
        status=row["status"], last_error_code=row["last_error_code"] or "",
        last_error_message=row["last_error_message"] or "", usage_bytes=row["usage_bytes"],
        attributes_json=row["attributes"], max_chunk_size_tokens=row["max_chunk_tokens"],
        chunk_overlap_tokens=row["chunk_overlap_tokens"], filename=row["filename"], chunks=row["chunks"],
    )


class RagServicer(rag_pb2_grpc.RagServicer):
    def __init__(
        self, settings: RagSettings, pool: asyncpg.Pool, embedder: TextEmbedder | None = None,
        ingestor: Ingestor | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.embedder = embedder  # None: full-text retrieval only, no Embed
        self.ingestor = ingestor  # None: attachments wait for another replica's workers

    def _chunking(self, spec: rag_pb2.ChunkingStrategy) -> tuple[int, int]:
        if not spec.set:
            return self.settings.chunk_max_tokens, self.settings.chunk_overlap_tokens
        try:
            chunking.validate(spec.max_chunk_size_tokens, spec.chunk_overlap_tokens)
        except ValueError as exc:
            raise BadRequest(str(exc), param="chunking_strategy") from None
        return spec.max_chunk_size_tokens, spec.chunk_overlap_tokens

    async def _query_vector(self, text: str) -> np.ndarray | None:
        if self.embedder is None:
            return None
        with metrics.EMBEDDING_BATCH_SECONDS.labels("query").time():
            return (await asyncio.to_thread(self.embedder.embed, [text]))[0]

    # -- retrieval and embeddings ---------------------------------------------------------------------

    @_rpc
    async def Retrieve(
        self, request: rag_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.RetrieveResponse:
        with metrics.RETRIEVAL_SECONDS.time():
            return await self._retrieve(request)

    async def _retrieve(self, request: rag_pb2.RetrieveRequest) -> rag_pb2.RetrieveResponse:
        k = request.k or self.settings.default_k
        if k > self.settings.max_k:
            raise BadRequest(f"k must be at most {self.settings.max_k}", param="max_num_results")
        if not 0 <= request.score_threshold <= 1:
            raise BadRequest("score_threshold must be between 0 and 1", param="ranking_options.score_threshold")
        store_ids = list(dict.fromkeys(request.vector_store_ids))
        tenant = request.tenant_id
        if request.check_stores and store_ids:
            missing = set(store_ids) - await store.touch_stores(self.pool, tenant, store_ids)
            if missing:
                raise store.NotFound(f"No such vector store: {sorted(missing)[0]}")
        spec = filters.parse(request.filters_json)
        file_ids = await matching_files(self.pool, tenant, store_ids, spec) if spec is not None else None
        vector = await self._query_vector(request.query) if request.query.strip() and store_ids else None
        params = RetrievalParams(
            rrf_k=self.settings.rrf_k, candidates=self.settings.candidates, ef_search=self.settings.hnsw_ef_search,
            score_threshold=request.score_threshold, text_pool=self.settings.text_pool,
        )
        chunks = await retrieve(self.pool, tenant, request.query, store_ids, k, vector, params, file_ids)
        return rag_pb2.RetrieveResponse(
            chunks=[
                rag_pb2.Chunk(
                    text=c.text, score=c.score, source=c.source, file_id=c.file_id,
                    vector_store_id=c.vector_store_id, chunk_index=c.chunk_index, start_char=c.start_char,
                    end_char=c.end_char, attributes_json=json.dumps(c.attributes), similarity=c.similarity,
                )
                for c in chunks
            ]
        )

    @_rpc
    async def Embed(self, request: rag_pb2.EmbedRequest, context: Ctx) -> rag_pb2.EmbedResponse:
        if self.embedder is None:
            await abort(context, grpc.StatusCode.UNAVAILABLE, "this RAG replica has no embedding model")
        assert self.embedder is not None
        names = {self.embedder.name, *(MINILM_ALIASES if self.embedder.name in MINILM_ALIASES else ())}
        if request.model and request.model not in names:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"The model `{request.model}` does not exist.",
                        code="model_not_found", param="model")
        inputs = list(request.inputs)
        if not inputs:
            raise BadRequest("'input' must not be empty.", param="input")
        if len(inputs) > self.settings.max_embed_inputs:
            raise BadRequest(f"'input' has {len(inputs)} items; at most {self.settings.max_embed_inputs} are allowed.",
                             param="input")
        if any(not text for text in inputs):
            raise BadRequest("'input' cannot contain empty strings.", param="input")
        embedder = self.embedder
        with metrics.EMBEDDING_BATCH_SECONDS.labels("api").time():
            vectors, tokens = await asyncio.to_thread(
                lambda: (embedder.embed(inputs), embedder.count_tokens(inputs))
            )
        return rag_pb2.EmbedResponse(
            model=embedder.name, dim=embedder.dim, vectors=np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
            prompt_tokens=sum(tokens),
        )

    # -- files ----------------------------------------------------------------------------------------

    @_rpc
    async def UploadFile(self, request: rag_pb2.UploadFileRequest, context: Ctx) -> rag_pb2.FileInfo:
        if len(request.content) > self.settings.max_file_bytes:
            raise BadRequest(f"File is too large: the limit is {self.settings.max_file_bytes} bytes.", param="file",
                             code="file_too_large")
        if not request.filename:
            raise BadRequest("The file needs a name.", param="file")
        fmt, text = await asyncio.to_thread(extract, request.filename, request.content, request.content_type)
        row = await store.insert_file(self.pool, request.tenant_id, request.filename, request.purpose,
                                      request.content_type, fmt, request.content, text)
        log.info("file stored", extra={"f_file_id": row["id"], "f_bytes": row["bytes"], "f_format": fmt})
        return file_pb(row)

    @_rpc
    async def ListFiles(self, request: rag_pb2.ListRequest, context: Ctx) -> rag_pb2.ListFilesResponse:
        page = await store.list_files(self.pool, request.tenant_id, request.limit, request.order, request.after,
                                      request.before, request.purpose)
        return rag_pb2.ListFilesResponse(files=[file_pb(r) for r in page.rows], has_more=page.has_more)

    @_rpc
    async def GetFile(self, request: rag_pb2.FileRef, context: Ctx) -> rag_pb2.FileInfo:
        return file_pb(await store.get_file(self.pool, request.tenant_id, request.file_id))

    @_rpc
    async def GetFileContent(self, request: rag_pb2.FileRef, context: Ctx) -> rag_pb2.FileContent:
        row = await store.get_file(self.pool, request.tenant_id, request.file_id, content=True)
        return rag_pb2.FileContent(file=file_pb(row), content=bytes(row["content"]))

    @_rpc
    async def DeleteFile(self, request: rag_pb2.FileRef, context: Ctx) -> rag_pb2.Deleted:
        await store.delete_file(self.pool, request.tenant_id, request.file_id)
        return rag_pb2.Deleted(id=request.file_id, deleted=True)

    # -- vector stores --------------------------------------------------------------------------------

    def _metadata(self, text: str) -> dict[str, Any]:
        value = _json(text, "metadata") or {}
        if not isinstance(value, dict) or len(value) > 16:
            raise BadRequest("'metadata' is an object of at most 16 keys.", param="metadata")
        return value

    @_rpc
    async def CreateVectorStore(
        self, request: rag_pb2.CreateVectorStoreRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.VectorStore:
        tenant = request.tenant_id
        max_tokens, overlap = self._chunking(request.chunking)
        metadata = self._metadata(request.metadata_json)
        for file_id in request.file_ids:  # refuse before creating anything
            await store.get_file(self.pool, tenant, file_id)
        store_id = await store.create_store(self.pool, tenant, request.name, metadata,
                                            request.expires_after_days or None)
        for file_id in dict.fromkeys(request.file_ids):
            await store.attach(self.pool, tenant, store_id, file_id, None, max_tokens, overlap)
        if request.file_ids and self.ingestor is not None:
            self.ingestor.notify()
        return store_pb(await store.get_store(self.pool, tenant, store_id))

    @_rpc
    async def ListVectorStores(
        self, request: rag_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.ListVectorStoresResponse:
        page = await store.list_stores(self.pool, request.tenant_id, request.limit, request.order, request.after,
                                       request.before)
        return rag_pb2.ListVectorStoresResponse(stores=[store_pb(r) for r in page.rows], has_more=page.has_more)

    @_rpc
    async def GetVectorStore(self, request: rag_pb2.VectorStoreRef, context: Ctx) -> rag_pb2.VectorStore:
        return store_pb(await store.get_store(self.pool, request.tenant_id, request.vector_store_id))

    @_rpc
    async def UpdateVectorStore(
        self, request: rag_pb2.UpdateVectorStoreRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.VectorStore:
        metadata = self._metadata(request.metadata_json) if request.HasField("metadata_json") else None
        name = request.name if request.HasField("name") else None
        set_expiry = request.HasField("expires_after_days")
        await store.update_store(self.pool, request.tenant_id, request.vector_store_id, name, metadata,
                                 request.expires_after_days or None, set_expiry)
        return store_pb(await store.get_store(self.pool, request.tenant_id, request.vector_store_id))

    @_rpc
    async def DeleteVectorStore(self, request: rag_pb2.VectorStoreRef, context: Ctx) -> rag_pb2.Deleted:
        await store.delete_store(self.pool, request.tenant_id, request.vector_store_id)
        return rag_pb2.Deleted(id=request.vector_store_id, deleted=True)

    # -- attachments ----------------------------------------------------------------------------------

    @_rpc
    async def AttachFile(self, request: rag_pb2.AttachFileRequest, context: Ctx) -> rag_pb2.VectorStoreFile:
        max_tokens, overlap = self._chunking(request.chunking)
        attributes = _json(request.attributes_json, "attributes")
        if attributes is not None and (
            not isinstance(attributes, dict) or len(attributes) > 16
            or not all(isinstance(v, str | int | float | bool) for v in attributes.values())
        ):
            raise BadRequest("'attributes' is an object of at most 16 string, number or boolean values.",
                             param="attributes")
        row = await store.attach(self.pool, request.tenant_id, request.vector_store_id, request.file_id, attributes,
                                 max_tokens, overlap)
        if self.ingestor is not None:
            self.ingestor.notify()
        return attachment_pb(row)

    @_rpc
    async def ListVectorStoreFiles(
        self, request: rag_pb2.ListVectorStoreFilesRequest, context: grpc.aio.ServicerContext
    ) -> rag_pb2.ListVectorStoreFilesResponse:
        if request.status and request.status not in ("in_progress", "completed", "failed", "cancelled"):
            raise BadRequest(f"Invalid filter '{request.status}'.", param="filter")
        page = await store.list_attachments(self.pool, request.tenant_id, request.vector_store_id, request.status,
                                            request.limit, request.order, request.after, request.before)
        return rag_pb2.ListVectorStoreFilesResponse(files=[attachment_pb(r) for r in page.rows],
                                                    has_more=page.has_more)

    @_rpc
    async def GetVectorStoreFile(
        self, request: rag_pb2.VectorStoreFileRef, context: grpc.aio.ServicerContext
    ) -> rag_pb2.VectorStoreFile:
        return attachment_pb(await store.get_attachment(self.pool, request.tenant_id, request.vector_store_id,
                                                        request.file_id))

    @_rpc
    async def DetachFile(self, request: rag_pb2.VectorStoreFileRef, context: Ctx) -> rag_pb2.Deleted:
        await store.detach(self.pool, request.tenant_id, request.vector_store_id, request.file_id)
        return rag_pb2.Deleted(id=request.file_id, deleted=True)
