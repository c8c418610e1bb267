"""mTLS gRPC channels and stubs to the inference, guard and RAG services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.tls import CLIENT_CHANNEL_OPTIONS, secure_channel
from flotilla.v1 import guard_pb2_grpc, rag_pb2_grpc
from services.gateway.routing import InferenceRouter
from services.gateway.settings import GatewaySettings


@dataclass
class Upstreams:
    """The gateway's clients. Stubs are typed loosely so unit tests can pass named fakes."""

    inference: InferenceRouter
    guard: Any
    rag: Any
    health: dict[str, Any] = field(default_factory=dict)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Upstreams:
        tls = settings.tls_files()
        targets = {
            "guard": (settings.guard_target, settings.guard_server_name),
            "rag": (settings.rag_target, settings.rag_server_name),
        }
        channels = {
            name: secure_channel(target, tls, server_name, CLIENT_CHANNEL_OPTIONS)
            for name, (target, server_name) in targets.items()
        }
        router = InferenceRouter(
            settings.inference_target_list, tls, settings.inference_server_name,
            refresh_s=settings.refresh_s, eject_s=settings.eject_s, affinity_slack=settings.affinity_slack,
            retries=settings.retries, backoff_s=settings.retry_backoff_s, backoff_max_s=settings.retry_backoff_max_s,
            circuit_failures=settings.circuit_failures, eject_max_s=settings.eject_max_s,
        )
        return cls(
            inference=router,
            guard=guard_pb2_grpc.GuardStub(channels["guard"]),
            rag=rag_pb2_grpc.RagStub(channels["rag"]),
            health={name: health_pb2_grpc.HealthStub(ch) for name, ch in channels.items()},
            channels=list(channels.values()),
        )

    async def start(self) -> None:
        await self.inference.start()

    async def check(self, deadline_s: float = 1.0) -> dict[str, str]:
        """Health status of each upstream (``SERVING``, ``NOT_SERVING`` or the gRPC error)."""

        async def one(stub: Any) -> str:
            try:
                resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=deadline_s)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name

        names = list(self.health)
        results = await asyncio.gather(*(one(self.health[n]) for n in names))
        out = dict(zip(names, results, strict=True))
        await self.inference.refresh()
        out["inference"] = "SERVING" if self.inference.healthy() else "NOT_SERVING"
        return out

    async def close(self) -> None:
        await self.inference.close()
        await asyncio.gather(*(ch.close() for ch in self.channels))
