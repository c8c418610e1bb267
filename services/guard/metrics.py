"""Prometheus metrics of the guard (served over HTTP on ``FLOTILLA_GUARD_METRICS_PORT``, 9102 by default)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

FINDINGS = Counter(
    "flotilla_guard_findings_total", "Findings at or over their policy threshold.", ["scanner", "action"]
)
VERDICTS = Counter("flotilla_guard_verdicts_total", "Scan verdicts.", ["stage", "verdict"])
SCAN_SECONDS = Histogram(
    "flotilla_guard_scan_seconds", "Time to scan one request (all texts, all scanners).", ["stage"], buckets=_BUCKETS
)
SCANNER_SECONDS = Histogram(
    "flotilla_guard_scanner_seconds", "Time one scanner spent on one text.", ["scanner"], buckets=_BUCKETS
)
STREAM_HELD_CHARS = Histogram(
    "flotilla_guard_stream_held_chars", "Characters held back after each streamed delta.",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 512, 4096),
)


def serve(port: int, host: str = "0.0.0.0"):
    """Start the /metrics HTTP server (returns it, or None); a port already taken is logged, not fatal."""
    if port <= 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics port unavailable", extra={"f_port": port, "f_error": str(exc)})
        return None
    log.info("metrics on http", extra={"f_port": port})
    return server
