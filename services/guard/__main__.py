"""``python -m services.guard``: the guard gRPC server (mTLS, health, drain on SIGTERM).

Scanners (spaCy, the MiniLM ONNX model, the heads) load once, before the server reports SERVING.
"""

import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model ships in a package; nothing is downloaded

from flotilla.grpcserver import serve_until_signal, start_server
from flotilla.telemetry import setup_logging
from flotilla.tracing import setup_tracing, shutdown_tracing
from flotilla.v1 import guard_pb2, guard_pb2_grpc
from services.guard import metrics
from services.guard.server import GuardServicer
from services.guard.settings import GuardSettings


async def main() -> None:
    settings = GuardSettings()
    setup_logging("guard", settings.log_level, settings.log_json)
    setup_tracing("guard")  # OTEL_TRACES_EXPORTER unset: off
    metrics.serve(settings.metrics_port, settings.host)
    servicer = await asyncio.to_thread(GuardServicer, settings)  # loads the models
    svc = await start_server(
        settings.listen_address,
        settings.tls_files(),
        [lambda s: guard_pb2_grpc.add_GuardServicer_to_server(servicer, s)],
        [guard_pb2.DESCRIPTOR.services_by_name["Guard"].full_name],
    )
    await svc.set_serving(True)
    try:
        await serve_until_signal(svc, settings.drain_grace_s)
    finally:
        servicer.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        shutdown_tracing()
