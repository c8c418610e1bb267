"""OpenAI Files API: ``POST/GET /v1/files``, ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``,
``DELETE /v1/files/{id}``. Bytes and metadata live in the RAG service (Postgres), scoped to the tenant;
text, Markdown, HTML and PDF are accepted (their text is extracted at upload), anything else is a 400."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from flotilla.v1 import rag_pb2
from services.gateway import rag_api
from services.gateway.errors import OpenAIError

router = APIRouter()
PURPOSES = ("assistants", "user_data")


def file_object(f: rag_pb2.FileInfo) -> dict[str, Any]:
    return {
        "id": f.id, "object": "file", "bytes": f.bytes, "created_at": f.created_at, "filename": f.filename,
        "purpose": f.purpose, "status": "processed", "expires_at": None, "status_details": None,
    }


@router.post("/v1/files")
async def upload_file(
    request: Request, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]
) -> dict[str, Any]:
    tenant = rag_api.tenant_of(request)
    if purpose not in PURPOSES:
        raise OpenAIError(400, f"Invalid value for 'purpose': '{purpose}'. This deployment accepts "
                          f"{' and '.join(repr(p) for p in PURPOSES)} (files for file_search).", param="purpose",
                          code="invalid_value")
    limit = rag_api.settings().max_file_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise OpenAIError(413, f"File is too large: the limit is {limit} bytes.", param="file", code="file_too_large")
    info = await rag_api.call(
        rag_api.rag_stub(request).UploadFile,
        rag_pb2.UploadFileRequest(
            request_id=request.state.request_id, tenant_id=tenant, filename=file.filename or "", purpose=purpose,
            content=content, content_type=file.content_type or "",
        ),
        rag_api.settings().rag_files_timeout_s,
    )
    return file_object(info)


@router.get("/v1/files")
async def list_files(
    request: Request, purpose: str | None = None, limit: int | None = None, order: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    msg = rag_pb2.ListRequest(tenant_id=rag_api.tenant_of(request), limit=rag_api.check_limit(limit),
                              order=rag_api.check_order(order), after=after or "", purpose=purpose or "")
    resp = await rag_api.call(rag_api.rag_stub(request).ListFiles, msg, rag_api.timeout(request))
    return rag_api.page([file_object(f) for f in resp.files], resp.has_more)


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request) -> dict[str, Any]:
    ref = rag_pb2.FileRef(tenant_id=rag_api.tenant_of(request), file_id=file_id)
    return file_object(await rag_api.call(rag_api.rag_stub(request).GetFile, ref, rag_api.timeout(request)))


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> Response:
    ref = rag_pb2.FileRef(tenant_id=rag_api.tenant_of(request), file_id=file_id)
    resp = await rag_api.call(rag_api.rag_stub(request).GetFileContent, ref,
                              rag_api.settings().rag_files_timeout_s)
    name = resp.file.filename.replace('"', "")
    return Response(resp.content, media_type=resp.file.content_type or "application/octet-stream",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request) -> dict[str, Any]:
    ref = rag_pb2.FileRef(tenant_id=rag_api.tenant_of(request), file_id=file_id)
    resp = await rag_api.call(rag_api.rag_stub(request).DeleteFile, ref, rag_api.timeout(request))
    return {"id": resp.id, "object": "file", "deleted": resp.deleted}
