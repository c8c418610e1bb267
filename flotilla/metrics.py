"""Prometheus plumbing shared by the gRPC services: the ``/metrics`` HTTP server and common buckets.

The gateway serves ``/metrics`` on its own HTTP port (a FastAPI route); inference, guard and RAG start a
small HTTP server on ``FLOTILLA_<SERVICE>_METRICS_PORT`` with :func:`serve`.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

log = logging.getLogger(__name__)

# Latencies of in-process work and of hops between services (seconds).
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# End-to-end latencies of model calls (seconds).
SLOW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def serve(port: int, host: str = "0.0.0.0") -> Any:
    """Start the ``/metrics`` HTTP server in a daemon thread and return it; ``port <= 0`` disables it.

    A port already taken is logged, not fatal: a service without metrics still serves.
    """
    if port <= 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics port unavailable", extra={"f_port": port, "f_error": str(exc)})
        return None
    log.info("metrics on http", extra={"f_port": port})
    return server
