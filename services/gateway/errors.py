"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the right status."""

from __future__ import annotations

import json
import logging
import re

import asyncpg
import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flotilla.grpcerrors import error_details
from services.gateway import metrics
from services.gateway.protocol import ErrorInfo, ErrorResponse

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return ErrorResponse(
            error=ErrorInfo(message=self.message, type=self.type, param=self.param, code=self.code)
        ).model_dump()

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def sse_event(self) -> str:
        return f"data: {json.dumps(self.body())}\n\n"


def from_grpc(error: grpc.aio.AioRpcError, service: str) -> OpenAIError:
    """Map an upstream gRPC failure to the OpenAI error the client should see."""
    code, param = error_details(error)
    status = error.code()
    if status != grpc.StatusCode.CANCELLED:  # CANCELLED: we cancelled it (the client went away)
        metrics.upstream_error(service, status.name)
    details = error.details() or status.name
    if status == grpc.StatusCode.NOT_FOUND:
        return OpenAIError(404, details, code=code or "not_found", param=param or None)
    if status == grpc.StatusCode.INVALID_ARGUMENT:
        return OpenAIError(400, details, code=code or None, param=param or None)
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return OpenAIError(429, details, code=code or "rate_limit_exceeded", headers={"retry-after": "1"})
    if status == grpc.StatusCode.DEADLINE_EXCEEDED:
        return OpenAIError(504, f"The {service} service did not answer in time.", code="upstream_timeout")
    if status == grpc.StatusCode.UNAVAILABLE:
        return OpenAIError(
            503,
            f"The {service} service is unavailable; retry shortly.",
            code="service_unavailable",
            headers={"retry-after": "1"},
        )
    if status == grpc.StatusCode.CANCELLED:
        return OpenAIError(499, "The request was cancelled.", code="cancelled", type="invalid_request_error")
    log.warning("upstream error", extra={"f_service": service, "f_status": status.name, "f_details": details})
    return OpenAIError(502, f"The {service} service failed: {details}", code="upstream_error")


def _param(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    # drop pydantic's union-branch labels such as "str" / "list[...]" / "function-after[...]"
    parts = [
        p for p in parts if not (p.isidentifier() is False and "[" in p) and p not in {"str", "int", "float"}
    ]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = tuple(first.get("loc", ()))
        kind = first.get("type", "")
        param = _param(loc)
        if kind == "json_invalid":
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly.)"
            )
            return OpenAIError(400, message, code="invalid_json").response()
        if kind == "extra_forbidden":
            return OpenAIError(
                400, f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter"
            ).response()
        if kind == "missing":
            return OpenAIError(
                400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
            ).response()
        msg = str(first.get("msg", "Invalid request"))
        msg = msg.removeprefix("Value error, ")
        named = re.match(r"^([a-z_]+): (.*)$", msg, re.DOTALL)
        if named and param is None:  # a cross-field check names its parameter: "top_logprobs: ..."
            param, msg = named.group(1), named.group(2)
            return OpenAIError(400, msg, param=param, code="invalid_value").response()
        where = f"Invalid value for '{param}': " if param else ""
        return OpenAIError(400, f"{where}{msg}", param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404:
            message = "Unknown request URL. Please check the URL and method."
        elif exc.status_code == 405:
            message = "Method not allowed for this URL."
        return OpenAIError(exc.status_code, message, code=None).response()

    @app.exception_handler(asyncpg.DataError)
    async def _bad_value(_: Request, exc: asyncpg.DataError) -> JSONResponse:
        # A value Postgres cannot store or compare (a NUL byte, a number out of range): the caller's input.
        return OpenAIError(400, f"Invalid value in the request ({exc.__class__.__name__}).",
                           code="invalid_value").response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"f_path": request.url.path})
        return OpenAIError(
            500,
            "The server had an error while processing your request.",
            type="server_error",
            code="internal_error",
        ).response()
