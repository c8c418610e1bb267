"""``/admin``: API key management and usage totals, guarded by the admin key (``FLOTILLA_GATEWAY_ADMIN_KEY``)."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.gateway import keys as keystore
from services.gateway.errors import OpenAIError
from services.gateway.ledger import usage_totals


def require_admin(request: Request) -> None:
    expected = request.app.state.settings.admin_key
    if not expected:
        raise OpenAIError(403, "The admin API is disabled (set FLOTILLA_GATEWAY_ADMIN_KEY).", code="admin_disabled")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise OpenAIError(401, "A valid admin key is required.", type="invalid_request_error", code="invalid_api_key")


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], include_in_schema=True)


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
    tenant_id: Annotated[str | None, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")] = None
    models: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]] | None = None
    rpm: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None
    tpm: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None
    max_budget_tokens: Annotated[int | None, Field(ge=1, le=2**63 - 1)] = None


def _pool(request: Request) -> Any:
    pool = request.app.state.access.pool
    if pool is None:
        raise OpenAIError(503, "The database is not configured.", code="service_unavailable")
    return pool


@router.post("/keys")
async def create(body: CreateKey, request: Request) -> dict[str, Any]:
    try:
        record, key = await keystore.create_key(_pool(request), **body.model_dump())
    except ValueError as exc:
        raise OpenAIError(409, str(exc), param="name", code="key_exists") from None
    return {**record.public(), "key": key}


@router.get("/keys")
async def list_all(request: Request, include_revoked: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": [k.public() for k in await keystore.list_keys(_pool(request), include_revoked)]}


@router.delete("/keys/{name}")
async def revoke(name: str, request: Request) -> dict[str, Any]:
    if not await keystore.revoke_key(_pool(request), name):
        raise OpenAIError(404, f"No active key named {name!r}.", param="name", code="key_not_found")
    return {"name": name, "revoked": True}


@router.get("/usage")
async def usage(request: Request, key: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    return {"object": "list", "data": await usage_totals(_pool(request), key, since)}
