"""Per-request metrics and the access log of the gateway (pure ASGI middleware).

For every HTTP request: ``flotilla_requests_in_flight{route}`` while it runs, then
``flotilla_requests_total{route,model,status}``, ``flotilla_request_duration_seconds{route,model}`` and one
JSON access-log line (logger ``flotilla.access``) with the request id, trace id (from the log formatter while
a span is active), key id, model, route, status, latency and token counts. The API key itself and the prompt
are never logged; the prompt only when ``FLOTILLA_GATEWAY_LOG_PROMPTS=true``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import metrics

log = logging.getLogger("flotilla.access")

QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz", "/health", "/ready"})  # counted, not logged
PROMPT_BODY_LIMIT = 64 * 1024  # bytes of request body kept for the prompt log (when enabled)
PROMPT_LOG_CHARS = 4000


_STATIC: dict[tuple[str, str], str] = {}  # (method, path) of a route without parameters -> its template


def route_template(scope: Scope) -> str:
    """The template of the route ``scope`` matches (``/v1/files/{file_id}``), else ``unmatched``. Routes without
    path parameters (the generation routes among them) are looked up once and then remembered."""
    key = (scope.get("method", ""), scope.get("path", ""))
    cached = _STATIC.get(key)
    if cached is not None:
        return cached
    app = scope.get("app")
    router = getattr(app, "router", None)
    partial = None
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            template = getattr(route, "path", metrics.UNMATCHED)
            if "{" not in template:
                _STATIC[key] = template
            return template
        if match is Match.PARTIAL and partial is None:  # the path exists, the method does not (405)
            partial = getattr(route, "path", None)
    return partial or metrics.UNMATCHED


def prompt_text(body: bytes) -> str | None:
    """The prompt of an OpenAI request body (messages, prompt or input), for the opt-in prompt log."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("messages"), list):
        parts = []
        for m in data["messages"]:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            if content:
                parts.append(f"{m.get('role', '')}: {content}")
        return "\n".join(parts)[:PROMPT_LOG_CHARS]
    for name in ("prompt", "input"):
        if name in data:
            value = data[name]
            return (value if isinstance(value, str) else json.dumps(value))[:PROMPT_LOG_CHARS]
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, log_prompts: bool = False) -> None:
        self.app = app
        self.log_prompts = log_prompts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = route_template(scope)
        status = 500  # unless a response starts
        body = bytearray()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < PROMPT_BODY_LIMIT:
                body.extend(message.get("body", b"")[: PROMPT_BODY_LIMIT - len(body)])
            return message

        in_flight = metrics.IN_FLIGHT.labels(route)
        in_flight.inc()
        try:
            await self.app(scope, receive_kept if self.log_prompts else receive, send_observed)
        finally:
            in_flight.dec()
            elapsed = time.perf_counter() - started
            state: dict[str, Any] = scope.get("state") or {}
            acct = state.get("acct")
            model = (acct.model if acct is not None else state.get("model")) or ""
            metrics.REQUESTS.labels(route, model, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(route, model).observe(elapsed)
            if route not in QUIET_ROUTES:
                self._access_log(scope, state, route, model, status, elapsed, bytes(body))

    def _access_log(
        self, scope: Scope, state: dict[str, Any], route: str, model: str, status: int, elapsed: float, body: bytes
    ) -> None:
        acct = state.get("acct")
        key = state.get("api_key")
        fields: dict[str, Any] = {
            "f_request_id": state.get("request_id"),
            "f_method": scope.get("method"),
            "f_route": route,
            "f_status": status,
            "f_latency_ms": round(elapsed * 1000, 1),
            "f_key_id": key.id if key is not None else None,
            "f_model": model or None,
        }
        if acct is not None:
            fields["f_prompt_tokens"] = acct.usage.prompt_tokens
            fields["f_completion_tokens"] = acct.usage.completion_tokens
            if acct.ttft_s is not None:
                fields["f_ttft_ms"] = round(acct.ttft_s * 1000, 1)
            if acct.finish_reason:
                fields["f_finish_reason"] = acct.finish_reason
        if self.log_prompts and body:
            fields["f_prompt"] = prompt_text(body)
        log.info("request", extra=fields)
