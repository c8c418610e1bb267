"""``python -m services.inference``: vLLM's async engine behind an mTLS gRPC server.

The engine spawns worker processes, hence the ``__main__`` guard.
"""

import asyncio
import logging

from flotilla.grpcserver import serve_until_signal, start_server
from flotilla.telemetry import setup_logging
from flotilla.tracing import setup_tracing, shutdown_tracing
from flotilla.v1 import inference_pb2, inference_pb2_grpc
from services.inference import metrics
from services.inference.engine import build_engine, configure_environment
from services.inference.server import InferenceServicer
from services.inference.settings import InferenceSettings

log = logging.getLogger("services.inference")


async def main() -> None:
    settings = InferenceSettings()
    setup_logging("inference", settings.log_level, settings.log_json)
    setup_tracing("inference")  # OTEL_TRACES_EXPORTER unset: off
    configure_environment(settings)
    engine = build_engine(settings)  # loads the weights; the port opens only once the engine is ready
    metrics.serve(settings.metrics_port, settings.host)
    servicer = InferenceServicer(settings, engine)
    svc = await start_server(
        settings.listen_address,
        settings.tls_files(),
        [lambda s: inference_pb2_grpc.add_InferenceServicer_to_server(servicer, s)],
        [inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name],
    )
    await svc.set_serving(True)
    log.info("engine ready", extra={"f_model": settings.model_name})

    async def shutdown() -> None:
        engine.shutdown()

    def drain_started() -> None:
        servicer.draining = True
        metrics.DRAINING.set(1)

    await serve_until_signal(svc, settings.drain_grace_s, on_stop=shutdown, on_drain=drain_started)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        shutdown_tracing()
