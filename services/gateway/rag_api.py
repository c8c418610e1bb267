"""Shared by the gateway's Files, Vector Stores, Embeddings and Responses routes: the tenant of a request,
RAG gRPC calls with OpenAI error mapping, list pages and the settings of these routes.

The RAG service owns the files, stores and chunks; the gateway only translates OpenAI's HTTP schemas.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from fastapi import Request
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.gateway.errors import OpenAIError, from_grpc

T = TypeVar("T")


class RagApiSettings(BaseSettings):
    """Settings of the RAG-facing routes; environment prefix ``FLOTILLA_GATEWAY_`` like the gateway's."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_GATEWAY_", extra="ignore")

    max_file_bytes: int = 20 * 1024 * 1024  # uploads above this get 413 (RAG enforces its own limit too)
    rag_files_timeout_s: float = 60.0  # uploads (PDF extraction) and downloads
    responses_max_results: int = 4  # file_search results used as context unless max_num_results says otherwise


@functools.cache
def settings() -> RagApiSettings:
    return RagApiSettings()


def body_limits() -> dict[str, int]:
    """Per-path request-body limits for the middleware: uploads may be larger than JSON bodies."""
    return {"/v1/files": settings().max_file_bytes + 64 * 1024}  # room for the multipart framing


def tenant_of(request: Request) -> str:
    """The request's tenant: set by API-key authentication when the gateway has keys, else the gateway's."""
    tenant = getattr(request.state, "tenant_id", None)
    if tenant:
        return tenant
    access = getattr(request.app.state, "access", None)
    if access is not None:  # authenticates (401 without a valid key) and sets request.state.tenant_id
        return access.authenticate(request).tenant_id
    return request.app.state.chat.settings.tenant_id


def rag_stub(request: Request) -> Any:
    return request.app.state.upstreams.rag


def timeout(request: Request) -> float:
    return request.app.state.chat.settings.rag_timeout_s


async def call(fn: Callable[..., Awaitable[T]], message: Any, deadline: float) -> T:
    try:
        return await fn(message, timeout=deadline)
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc, "rag") from None


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list", "data": data, "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None, "has_more": has_more,
    }


def loads(text: str) -> Any:
    return json.loads(text) if text else {}


def check_order(order: str | None) -> str:
    if order not in (None, "asc", "desc"):
        raise OpenAIError(400, "Invalid value for 'order': expected 'asc' or 'desc'.", param="order",
                          code="invalid_value")
    return order or "desc"


def check_limit(limit: int | None) -> int:
    if limit is not None and not 1 <= limit <= 100:
        raise OpenAIError(400, "Invalid value for 'limit': expected an integer between 1 and 100.", param="limit",
                          code="invalid_value")
    return limit or 20
