"""``python -m services.gateway``: the OpenAI-compatible HTTP gateway (uvicorn)."""

import uvicorn

from flotilla import metrics
from flotilla.telemetry import setup_logging
from flotilla.tracing import setup_tracing, shutdown_tracing
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    setup_logging("gateway", settings.log_level, settings.log_json)
    setup_tracing("gateway")  # OTEL_TRACES_EXPORTER unset: off
    if settings.metrics_port and settings.metrics_port != settings.port:
        metrics.serve(settings.metrics_port, settings.host)  # /metrics is on the HTTP port as well
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,  # services/gateway/observability.py writes the access log
            timeout_graceful_shutdown=settings.drain_grace_s,
            # X-Forwarded-* are trusted only from these addresses (an ingress); unset: not read at all.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
