"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

GUARD_FAIL_OPEN = Counter(
    "flotilla_guard_fail_open_total",
    "Requests served without (part of) their guard scans because the guard was unreachable (fail-open).",
)
RAG_DEGRADED = Counter(
    "flotilla_rag_degraded_total",
    "Requests answered without retrieved context because the RAG service was unreachable (fail-open).",
)
