"""OpenTelemetry tracing shared by every service: set-up from the standard ``OTEL_*`` variables and the gRPC
interceptors that carry W3C ``traceparent`` between the services.

Off by default: without ``OTEL_TRACES_EXPORTER`` (or with ``none``, or ``OTEL_SDK_DISABLED=true``) no SDK is
installed, no interceptor is added and the gateway is not instrumented, so tracing costs nothing. With
``OTEL_TRACES_EXPORTER=otlp`` spans go to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (gRPC, or HTTP when
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``); ``console`` prints them. ``OTEL_SERVICE_NAME`` (default
``flotilla-<service>``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the exporter's own variables
work as the SDK documents them.

Traces start at the gateway: servers only trace calls that arrive with a ``traceparent`` and clients only
calls made inside a span, so health checks and background refreshes make no orphan traces.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

log = logging.getLogger(__name__)

_sdk_provider: Any = None  # the SDK TracerProvider, installed once per process
_provider: Any = None  # the same while tracing is on, else None


def enabled() -> bool:
    return _provider is not None


def exporter_from_env(env: Mapping[str, str]) -> Any:
    """The span exporter ``OTEL_TRACES_EXPORTER`` names (otlp, console), or None when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    if not names:
        return None
    if len(names) > 1:
        log.warning("only the first OTEL_TRACES_EXPORTER is used", extra={"f_exporters": names})
    name = names[0]
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            return HttpExporter()
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER {name!r} (use otlp, console or none)")


def setup_tracing(
    service: str, exporter: Any = None, env: Mapping[str, str] | None = None, simple: bool = False
) -> Any:
    """Install the SDK tracer provider when tracing is configured; returns it (None: tracing stays off).

    ``exporter`` overrides the environment (tests pass an in-memory one with ``simple=True``, which exports
    each span as it ends instead of in batches). Call before creating gRPC channels and servers.
    """
    global _provider, _sdk_provider
    if exporter is None:
        exporter = exporter_from_env(os.environ if env is None else env)
        if exporter is None:
            return _provider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _sdk_provider is None:
        _sdk_provider = _new_provider(service, os.environ if env is None else env)
        trace.set_tracer_provider(_sdk_provider)
    _sdk_provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
    _provider = _sdk_provider
    log.info("tracing on", extra={"f_exporter": type(exporter).__name__,
                                  "f_service_name": _provider.resource.attributes.get("service.name")})
    return _provider


def _new_provider(service: str, env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from flotilla import __version__

    detected = Resource.create({"service.version": __version__})
    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = detected if named else detected.merge(Resource({"service.name": f"flotilla-{service}"}))
    return TracerProvider(resource=resource)


def disable_tracing() -> None:
    """Stop adding interceptors and instrumentation to new channels, servers and apps (tests)."""
    global _provider
    _provider = None


def shutdown_tracing() -> None:
    """Flush and stop the exporter (services call it on exit)."""
    if _sdk_provider is not None:
        _sdk_provider.shutdown()


def _is_health(method: Any) -> bool:
    name = method.decode() if isinstance(method, bytes) else str(method)
    return name.startswith("/grpc.health.")


def _server_filter(details: Any) -> bool:
    """Trace calls that carry a trace context (sent by a traced gateway), never health checks."""
    if _is_health(details.method):
        return False
    return any(k == "traceparent" for k, _ in (details.invocation_metadata or ()))


def _client_filter(details: Any) -> bool:
    """Trace calls made inside a span (a request being traced), never health checks."""
    return not _is_health(details.method) and trace.get_current_span().get_span_context().is_valid


def server_interceptors() -> list[Any]:
    """Interceptors for ``grpc.aio.server`` (empty while tracing is off)."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider, filter_=_server_filter)]


def client_interceptors() -> list[Any]:
    """Interceptors for ``grpc.aio`` channels (empty while tracing is off)."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_provider, filter_=_client_filter))


def tracer(name: str) -> trace.Tracer:
    """A tracer of the installed provider (a no-op one while tracing is off)."""
    return trace.get_tracer(name, tracer_provider=_provider)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the active span, for log lines; None outside a recorded span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
