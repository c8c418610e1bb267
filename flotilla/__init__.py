"""Flotilla's shared package: settings base, TLS credentials, telemetry, gRPC server plumbing,
generated protobuf stubs (``flotilla.v1``), migrations and the ``flotilla`` CLI."""

__version__ = "0.1.0"
