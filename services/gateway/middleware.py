"""Pure ASGI middleware: request ids on every response, a request-body size limit (413) and the client's
timeout header (``x-flotilla-timeout-s``, see deadlines.py)."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flotilla.telemetry import request_id_var
from services.gateway import deadlines
from services.gateway.errors import OpenAIError


class _BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = path_limits or {}  # exact paths with their own limit (file uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
        declared = headers.get(b"content-length")
        too_large = OpenAIError(
            413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await too_large.response()(scope, receive, send_with_id)
                return
            try:
                deadlines.read_header(headers.get(deadlines.TIMEOUT_HEADER_BYTES))  # x-flotilla-timeout-s
            except OpenAIError as exc:
                await exc.response()(scope, receive, send_with_id)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _BodyTooLarge
                return message

            try:
                await self.app(scope, limited_receive, send_with_id)
            except _BodyTooLarge:
                await too_large.response()(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
