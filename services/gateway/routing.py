"""Inference replica routing: discovery, least outstanding requests with prefix affinity, ejection, retry.

Each configured target is ``host:port``. A host that resolves to several addresses (a Kubernetes headless
Service) becomes one replica per address, dialled by IP but verified against the host name in its
certificate. Replicas announce what they serve through ``ListModels``, re-read every ``refresh_s``.

A request goes to the replica that its prefix hashes to (rendezvous hashing over the system prompt and the
start of the conversation, so vLLM's prefix cache hits) unless that replica has ``affinity_slack`` more
requests outstanding than the least busy one; then to the least busy. A call that fails with
``UNAVAILABLE`` before anything was streamed is retried on another replica, and the failed replica is
ejected for ``eject_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from flotilla.tls import CLIENT_CHANNEL_OPTIONS, TLSFiles, secure_channel
from flotilla.v1 import inference_pb2, inference_pb2_grpc

log = logging.getLogger(__name__)



class NoReplicaError(Exception):
    """No healthy replica serves the model (``unknown`` is True when none serves it at all)."""

    def __init__(self, model: str, unknown: bool) -> None:
        super().__init__(model)
        self.model = model
        self.unknown = unknown


@dataclass(eq=False)
class Replica:
    name: str  # the address dialled, e.g. 10.0.3.7:50051
    stub: Any
    channel: grpc.aio.Channel | None = None
    models: dict[str, inference_pb2.ModelCard] = field(default_factory=dict)
    outstanding: int = 0
    down_until: float = 0.0

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until


def affinity_key(parts: Iterable[str], limit: int = 512) -> str:
    """The leading text of a request (system prompt first): requests sharing it share a replica."""
    out, size = [], 0
    for part in parts:
        out.append(part[: limit - size])
        size += len(out[-1])
        if size >= limit:
            break
    return "\x00".join(out)


def _score(key: str, replica: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}|{replica}".encode(), digest_size=8).digest(), "big")


class InferenceRouter:
    def __init__(
        self,
        targets: list[str] | None = None,
        tls: TLSFiles | None = None,
        server_name: str | None = None,
        refresh_s: float = 10.0,
        eject_s: float = 5.0,
        affinity_slack: int = 4,
        call_timeout_s: float = 2.0,
    ) -> None:
        self.targets = targets or []
        self.tls = tls
        self.server_name = server_name
        self.refresh_s = refresh_s
        self.eject_s = eject_s
        self.affinity_slack = affinity_slack
        self.call_timeout_s = call_timeout_s
        self.replicas: dict[str, Replica] = {}
        self._task: asyncio.Task[None] | None = None
        self._discovered = asyncio.Event()

    @classmethod
    def from_stubs(cls, stubs: dict[str, Any], **kwargs: Any) -> InferenceRouter:
        """A router over given stubs (no DNS, no channels) — used by unit tests with named fakes."""
        router = cls(**kwargs)
        router.replicas = {name: Replica(name, stub) for name, stub in stubs.items()}
        return router

    # -- discovery -----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(r.channel.close() for r in self.replicas.values() if r.channel is not None))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # keep routing on the last known replicas
                log.exception("replica refresh failed")

    async def _resolve(self) -> dict[str, str]:
        """address -> host name to verify, for every configured target."""
        out: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        for target in self.targets:
            host, _, port = target.rpartition(":")
            host = host.strip("[]")
            try:
                ipaddress.ip_address(host)
                out[target] = self.server_name or host
                continue
            except ValueError:
                pass
            try:
                infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError:
                log.warning("cannot resolve inference target", extra={"f_target": target})
                continue
            v4 = sorted({i[4][0] for i in infos if i[0] == socket.AF_INET})
            addresses = v4 or sorted({i[4][0] for i in infos})
            for addr in addresses:
                shown = f"[{addr}]" if ":" in addr else addr
                out[f"{shown}:{port}"] = self.server_name or host
        return out

    async def refresh(self) -> None:
        if self.targets and self.tls is not None:
            resolved = await self._resolve()
            for addr, name in resolved.items():
                if addr not in self.replicas:
                    channel = secure_channel(addr, self.tls, name, CLIENT_CHANNEL_OPTIONS)
                    self.replicas[addr] = Replica(addr, inference_pb2_grpc.InferenceStub(channel), channel)
            for addr in [a for a in self.replicas if a not in resolved]:
                gone = self.replicas.pop(addr)
                if gone.channel is not None:
                    asyncio.get_running_loop().call_later(60, lambda ch=gone.channel: asyncio.ensure_future(ch.close()))
        await asyncio.gather(*(self._probe(r) for r in list(self.replicas.values())))
        self._discovered.set()

    async def _probe(self, replica: Replica) -> None:
        try:
            resp = await replica.stub.ListModels(inference_pb2.ListModelsRequest(), timeout=self.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.eject(replica)
            return
        replica.models = {m.id: m for m in resp.models}
        replica.down_until = 0.0

    async def ensure_discovered(self) -> None:
        if not self._discovered.is_set():
            await self.refresh()

    # -- selection -----------------------------------------------------------------------------------

    def eject(self, replica: Replica) -> None:
        replica.down_until = time.monotonic() + self.eject_s
        log.warning("inference replica ejected", extra={"f_replica": replica.name, "f_for_s": self.eject_s})

    def models(self) -> list[inference_pb2.ModelCard]:
        seen: dict[str, inference_pb2.ModelCard] = {}
        for replica in self.replicas.values():
            for model_id, card in replica.models.items():
                seen.setdefault(model_id, card)
        return list(seen.values())

    def card(self, model: str) -> inference_pb2.ModelCard | None:
        return next((r.models[model] for r in self.replicas.values() if model in r.models), None)

    def choose(self, model: str, key: str, exclude: set[str] = frozenset()) -> Replica:  # type: ignore[assignment]
        serving = [r for r in self.replicas.values() if model in r.models]
        if not serving:
            raise NoReplicaError(model, unknown=True)
        live = [r for r in serving if r.up and r.name not in exclude]
        if not live:
            raise NoReplicaError(model, unknown=False)
        least = min(r.outstanding for r in live)
        preferred = max(live, key=lambda r: _score(key, r.name))
        if preferred.outstanding <= least + self.affinity_slack:
            return preferred
        return min(live, key=lambda r: (r.outstanding, -_score(key, r.name)))

    async def open(
        self, request: inference_pb2.GenerateRequest, timeout: float, key: str
    ) -> tuple[Any, Any, Replica]:
        """Start ``Generate`` and read its first message, retrying other replicas while nothing was
        streamed. Returns (call, first message, replica); the caller must :meth:`release` the replica."""
        await self.ensure_discovered()
        tried: set[str] = set()
        while True:
            replica = self.choose(request.model, key, tried)
            replica.outstanding += 1
            call = replica.stub.Generate(request, timeout=timeout)
            try:
                first = await call.read()
                return call, first, replica
            except grpc.aio.AioRpcError as exc:
                replica.outstanding -= 1
                call.cancel()
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                self.eject(replica)
                tried.add(replica.name)
                if not [r for r in self.replicas.values() if request.model in r.models and r.name not in tried]:
                    raise

    @staticmethod
    def release(replica: Replica) -> None:
        replica.outstanding -= 1

    def healthy(self) -> int:
        return sum(1 for r in self.replicas.values() if r.up and r.models)
