"""The gateway's part of tracing: the FastAPI server span per request, with OpenTelemetry's ``gen_ai``
attributes on generation requests (chat, completions, responses).

The server span of ``POST /v1/chat/completions`` is the request's chat span: it stays open until the last
event of a stream, and :func:`finish` sets the usage and finish reason when the request is settled. The
gRPC calls to guard, RAG and inference are its children (see :mod:`flotilla.tracing`). Nothing here runs
while tracing is off.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry import trace

from flotilla import tracing

_OPERATIONS = {"chat.completions": "chat", "responses": "chat", "completions": "text_completion"}
_NOT_TRACED = "/healthz,/readyz,/health,/ready,/metrics"


def instrument_app(app: FastAPI) -> None:
    """One server span per HTTP request (probes and scrapes excepted) when tracing is on."""
    if not tracing.enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=trace.get_tracer_provider(), excluded_urls=_NOT_TRACED, exclude_spans=["receive", "send"]
    )


def chat_request(acct: Any, body: Any) -> None:
    """gen_ai request attributes on the current (server) span; keeps the span on ``acct`` for :func:`finish`."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    acct.span = span
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": _OPERATIONS.get(acct.endpoint, acct.endpoint),
        "gen_ai.system": "flotilla",
        "gen_ai.request.model": acct.model,
        "flotilla.key_id": acct.key.id,
        "flotilla.request_id": acct.request_id,
    }
    max_tokens = getattr(body, "effective_max_tokens", None) or getattr(body, "max_tokens", None)
    if max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "seed"):
        value = getattr(body, name, None)
        if value is not None:
            attrs[f"gen_ai.request.{name}"] = value
    if getattr(body, "stream", None) is not None:
        attrs["flotilla.stream"] = bool(body.stream)
    span.set_attributes(attrs)


def finish(acct: Any) -> None:
    """gen_ai response attributes once the request is settled (also for streams and cancelled requests)."""
    span = getattr(acct, "span", None)
    if span is None or not span.is_recording():
        return
    attrs: dict[str, Any] = {
        "gen_ai.usage.input_tokens": acct.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": acct.usage.completion_tokens,
        "gen_ai.response.id": acct.id,
        "gen_ai.response.model": acct.model,
    }
    if acct.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = [acct.finish_reason]
    if acct.ttft_s is not None:
        attrs["flotilla.ttft_ms"] = round(acct.ttft_s * 1000, 1)
    span.set_attributes(attrs)
