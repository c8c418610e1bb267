"""gRPC ``aio`` server plumbing shared by the inference, guard and RAG services.

Every server listens with mutual TLS only, serves ``grpc.health.v1`` and, on SIGTERM/SIGINT, turns
NOT_SERVING, stops accepting new RPCs and lets in-flight ones finish within ``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flotilla import tracing
from flotilla.tls import TLSFiles, server_credentials

log = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]


class GrpcService:
    """A running server plus its health servicer, so callers can flip readiness."""

    def __init__(self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, names: list[str]):
        self.server = server
        self.health = health_servicer
        self.names = names

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.names]:
            await self.health.set(name, status)


async def start_server(
    address: str,
    tls: TLSFiles,
    registrars: Iterable[Registrar],
    service_names: Iterable[str],
    options: Iterable[tuple[str, object]] = (),
) -> GrpcService:
    server = grpc.aio.server(
        interceptors=tracing.server_interceptors() or None,  # trace context from the caller (when tracing is on)
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            *options,
        ]
    )
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_secure_port(address, server_credentials(tls))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    svc = GrpcService(server, health_servicer, list(service_names))
    await svc.set_serving(False)
    log.info("listening with mTLS", extra={"f_address": address})
    return svc


async def serve_until_signal(
    svc: GrpcService,
    grace: float,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    on_drain: Callable[[], None] | None = None,
) -> None:
    """Block until SIGTERM/SIGINT, then drain: NOT_SERVING, refuse new calls, finish in-flight ones."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server_done = asyncio.ensure_future(svc.server.wait_for_termination())
    stop_wait = asyncio.ensure_future(stop.wait())
    await asyncio.wait({server_done, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    log.info("draining", extra={"f_grace_s": grace})
    if on_drain is not None:
        on_drain()
    await svc.set_serving(False)
    await svc.server.stop(grace)
    if on_stop is not None:
        await on_stop()
    stop_wait.cancel()
    log.info("stopped")
