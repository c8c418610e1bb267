"""Prometheus metrics of the inference service.

vLLM's own metrics (``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
``vllm:kv_cache_usage_perc``, TTFT and per-token histograms) live in the same default registry, so
one ``/metrics`` endpoint serves both.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from flotilla.metrics import serve as serve  # re-exported: services.inference.__main__ starts it

REQUESTS = Counter(
    "flotilla_inference_requests_total", "Generate calls by outcome", ["model", "outcome"]
)
IN_FLIGHT = Gauge("flotilla_inference_in_flight_requests", "Generate calls in progress", ["model"])
PROMPT_TOKENS = Counter("flotilla_inference_prompt_tokens_total", "Prompt tokens processed", ["model"])
COMPLETION_TOKENS = Counter("flotilla_inference_completion_tokens_total", "Tokens generated", ["model"])
TTFT = Histogram(
    "flotilla_inference_time_to_first_token_seconds",
    "Time from Generate call to the first streamed token",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DRAINING = Gauge("flotilla_inference_draining", "1 while the replica drains after SIGTERM")

