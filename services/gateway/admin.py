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


Spec = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x1f]*$")]


class GuardPolicy(BaseModel):
    """A key's guard policy per stage, in the one-line syntax (``"pii=block, injection=block:0.6"``)."""

    model_config = ConfigDict(extra="forbid")
    input: Spec | None = None
    output: Spec | None = None
    retrieved: Spec | None = None

    def stages(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
    tenant_id: Annotated[str | None, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")] = None
    models: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]] | None = None
    rpm: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None
    tpm: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None
    max_budget_tokens: Annotated[int | None, Field(ge=1, le=2**63 - 1)] = None
    guard_policy: GuardPolicy | None = None


def _pool(request: Request) -> Any:
    pool = request.app.state.access.pool
    if pool is None:
        raise OpenAIError(503, "The database is not configured.", code="service_unavailable")
    return pool


@router.post("/keys")
async def create(body: CreateKey, request: Request) -> dict[str, Any]:
    fields = body.model_dump(exclude={"guard_policy"})
    policy = body.guard_policy.stages() if body.guard_policy else None
    _check_policy(policy)
    try:
        record, key = await keystore.create_key(_pool(request), **fields, guard_policy=policy)
    except ValueError as exc:
        raise OpenAIError(409, str(exc), param="name", code="key_exists") from None
    return {**record.public(), "key": key}


def _check_policy(policy: dict[str, str] | None) -> None:
    try:
        keystore.validate_guard_policy(policy)
    except ValueError as exc:
        raise OpenAIError(400, f"Invalid guard policy: {exc}.", param="guard_policy", code="invalid_value") from None


@router.put("/keys/{name}/guard_policy")
async def set_guard_policy(name: str, body: GuardPolicy, request: Request) -> dict[str, Any]:
    """Replace the key's guard policy (an empty body: the gateway's policies); live on every replica in ~1 s."""
    _check_policy(body.stages())
    record = await keystore.set_guard_policy(_pool(request), name, body.stages())
    if record is None:
        raise OpenAIError(404, f"No active key named {name!r}.", param="name", code="key_not_found")
    return record.public()


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
