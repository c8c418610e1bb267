"""The deadline of a request's inference call: the gateway's ``inference_timeout_s``, or less when the
client asks for less with ``x-flotilla-timeout-s``. It becomes the gRPC deadline of ``Generate`` (retries
included); when it passes, the replica cancels the call, which aborts the vLLM request, and the client gets
a 504 ``upstream_timeout`` (or that error as the last event of a stream)."""

from __future__ import annotations

import math
from contextvars import ContextVar

from services.gateway.errors import OpenAIError
from services.gateway.settings import GatewaySettings

TIMEOUT_HEADER = "x-flotilla-timeout-s"
TIMEOUT_HEADER_BYTES = TIMEOUT_HEADER.encode()

_client_timeout: ContextVar[float | None] = ContextVar("flotilla_client_timeout", default=None)


def read_header(raw: bytes | None) -> None:
    """Take the client's timeout header for this request (called by the request middleware for every
    request; raises the 400 when it is not a positive number of seconds)."""
    if raw is None:
        _client_timeout.set(None)
        return
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        _client_timeout.set(None)
        raise OpenAIError(400, f"Invalid '{TIMEOUT_HEADER}' header: a positive number of seconds is required.",
                          code="invalid_value")
    _client_timeout.set(value)


def inference_timeout(settings: GatewaySettings) -> float:
    requested = _client_timeout.get()
    return settings.inference_timeout_s if requested is None else min(requested, settings.inference_timeout_s)
