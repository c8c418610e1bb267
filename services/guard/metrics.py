"""Prometheus metrics of the guard (served over HTTP on ``FLOTILLA_GUARD_METRICS_PORT``, 9102 by default)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from flotilla.metrics import FAST_BUCKETS as _BUCKETS
from flotilla.metrics import serve as serve  # re-exported: services.guard.__main__ starts it

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

