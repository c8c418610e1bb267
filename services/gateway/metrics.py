"""Prometheus metrics of the gateway, served at ``GET /metrics`` on its own HTTP port.

Labels stay bounded: ``route`` is the route template (``/v1/files/{file_id}``, never the raw path; requests
matching no route count as ``unmatched``), ``key_id`` is the public id of an API key (never its secret),
``status`` the HTTP status code and ``code`` a gRPC status name.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from flotilla.metrics import SLOW_BUCKETS

UNMATCHED = "unmatched"

REQUESTS = Counter(
    "flotilla_requests_total", "HTTP requests answered by the gateway.", ["route", "model", "status"]
)
REQUEST_SECONDS = Histogram(
    "flotilla_request_duration_seconds", "Time from request to the end of the response (streams: the last event).",
    ["route", "model"], buckets=SLOW_BUCKETS,
)
TTFT_SECONDS = Histogram(
    "flotilla_time_to_first_token_seconds", "Time from request to the first generated token reaching the gateway.",
    ["model"], buckets=SLOW_BUCKETS,
)
TOKENS = Counter(  # type: prompt | completion
    "flotilla_tokens_total", "Tokens billed, by model and API key.", ["model", "key_id", "type"]
)
IN_FLIGHT = Gauge("flotilla_requests_in_flight", "HTTP requests in progress.", ["route"])
QUOTA_REJECTIONS = Counter(  # limit: requests | tokens | budget
    "flotilla_quota_rejections_total", "Requests refused by a key's quota.", ["key_id", "limit"]
)
UPSTREAM_ERRORS = Counter(
    "flotilla_upstream_errors_total", "Failed gRPC calls to upstream services, by gRPC status.", ["service", "code"]
)
INFERENCE_RETRIES = Counter(  # each also counts in flotilla_upstream_errors_total{service="inference"}
    "flotilla_inference_retries_total",
    "Generate calls that failed before streaming and were retried on another replica, by gRPC status.", ["code"]
)
GUARD_FAIL_OPEN = Counter(
    "flotilla_guard_fail_open_total", "Requests let through unscanned because the guard was unreachable (fail open)."
)
RAG_DEGRADED = Counter(
    "flotilla_rag_degraded_total", "Requests answered without retrieved context because RAG was unreachable."
)


def observe_usage(model: str, key_id: str, prompt_tokens: int, completion_tokens: int, ttft_s: float | None) -> None:
    """Tokens billed for one finished request, and its time to first token."""
    if prompt_tokens:
        TOKENS.labels(model, key_id, "prompt").inc(prompt_tokens)
    if completion_tokens:
        TOKENS.labels(model, key_id, "completion").inc(completion_tokens)
    if ttft_s is not None:
        TTFT_SECONDS.labels(model).observe(ttft_s)


def upstream_error(service: str, code: str) -> None:
    UPSTREAM_ERRORS.labels(service, code).inc()


async def metrics_endpoint(_: Request) -> Response:
    """``GET /metrics``: the process's Prometheus registry (no API key: keep it off public ingress)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
