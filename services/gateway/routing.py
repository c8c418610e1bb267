"""Inference replica routing: discovery, least outstanding requests with prefix affinity, ejection, retry.

Each configured target is ``host:port``. A host that resolves to several addresses (a Kubernetes headless
Service) becomes one replica per address, dialled by IP but verified against the host name in its
certificate. Replicas announce what they serve through ``ListModels``, re-read every ``refresh_s``.

A request goes to the replica that its prefix hashes to (rendezvous hashing over the system prompt and the
start of the conversation, so vLLM's prefix cache hits) unless that replica has ``affinity_slack`` more
requests outstanding than the least busy one; then to the least busy.

Failures. A call that fails before anything was streamed (``UNAVAILABLE``, ``UNKNOWN``, ``INTERNAL``) is
retried on another replica, up to ``retries`` times, after a jittered exponential backoff ("full jitter":
uniform in ``[0, min(backoff_max_s, backoff_s * 2**attempt)]``), within the request's deadline.

Each replica has a circuit breaker:

* closed — chosen normally; consecutive failures are counted, a success resets the count;
* open — after ``UNAVAILABLE`` (the process is gone or draining: at once) or ``circuit_failures``
  consecutive failures of another kind, the replica is skipped for ``eject_s`` seconds, doubling with each
  re-opening up to ``eject_max_s``;
* half-open — once that time has passed, one trial request may go to it (or the periodic ``ListModels``
  probe answers): success closes the circuit, failure opens it again for longer.

A stream that fails after it started cannot be retried (the client already has part of the answer); its
failure still counts against the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from flotilla.tls import CLIENT_CHANNEL_OPTIONS, TLSFiles, secure_channel
from flotilla.v1 import inference_pb2, inference_pb2_grpc
from services.gateway import metrics

log = logging.getLogger(__name__)

# Failures of a call that has not streamed anything, worth another replica: the replica is gone or
# draining (UNAVAILABLE), or crashed inside the handler (UNKNOWN, INTERNAL — e.g. a dead vLLM engine).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})

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
    down_until: float = 0.0  # 0: circuit closed; else open until then, half-open after
    failures: int = 0  # consecutive failures while closed
    opened: int = 0  # consecutive openings (each one longer)
    trial: bool = False  # half-open: the one trial request is in flight

    @property
    def state(self) -> str:
        if not self.down_until:
            return "closed"
        return "open" if time.monotonic() < self.down_until else "half_open"

    @property
    def up(self) -> bool:
        """May take a request: closed, or half-open with no trial in flight yet."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self.trial)


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
        retries: int = 2,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        circuit_failures: int = 3,
        eject_max_s: float = 60.0,
    ) -> None:
        self.targets = targets or []
        self.tls = tls
        self.server_name = server_name
        self.refresh_s = refresh_s
        self.eject_s = eject_s
        self.affinity_slack = affinity_slack
        self.call_timeout_s = call_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.circuit_failures = max(circuit_failures, 1)
        self.eject_max_s = max(eject_max_s, eject_s)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # unit tests replace these two
        self.jitter: Callable[[float, float], float] = random.uniform
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
        state = replica.state
        if state == "half_open":  # the health probe brings it back
            self.succeeded(replica)
        elif state == "open":  # it answers again: half-open now, the next request is its trial
            replica.down_until = time.monotonic()

    async def ensure_discovered(self) -> None:
        if not self._discovered.is_set():
            await self.refresh()

    # -- circuit breaker -----------------------------------------------------------------------------

    def eject(self, replica: Replica) -> None:
        """Open the replica's circuit: skipped for eject_s, doubling with each consecutive opening."""
        replica.trial = False
        replica.failures = 0
        replica.opened += 1
        for_s = min(self.eject_s * 2 ** (replica.opened - 1), self.eject_max_s)
        replica.down_until = time.monotonic() + for_s
        log.warning("inference replica ejected",
                    extra={"f_replica": replica.name, "f_for_s": round(for_s, 3), "f_openings": replica.opened})

    def failed(self, replica: Replica, code: grpc.StatusCode) -> None:
        """A call on ``replica`` failed with ``code``: open its circuit, or count towards opening it."""
        if code not in RETRYABLE:
            replica.trial = False  # the replica answered (e.g. a bad request): not its fault
            return
        was_trial = replica.trial
        replica.failures += 1
        if code == grpc.StatusCode.UNAVAILABLE or was_trial or replica.failures >= self.circuit_failures:
            self.eject(replica)

    def succeeded(self, replica: Replica) -> None:
        if replica.down_until:
            log.info("inference replica back", extra={"f_replica": replica.name})
        replica.failures = replica.opened = 0
        replica.down_until = 0.0
        replica.trial = False

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1, 2, ...): full jitter over an exponential cap."""
        return self.jitter(0.0, min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))

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
        """Start ``Generate`` and read its first message, retrying other replicas (with jittered backoff,
        within ``timeout`` overall) while nothing was streamed. Returns (call, first message, replica); the
        caller must :meth:`release` the replica. ``timeout`` is the whole request's gRPC deadline."""
        deadline = time.monotonic() + timeout
        await self.ensure_discovered()
        tried: set[str] = set()
        attempt = 0
        while True:
            replica = self.choose(request.model, key, tried)
            if replica.state == "half_open":
                replica.trial = True
            replica.outstanding += 1
            call = replica.stub.Generate(request, timeout=max(deadline - time.monotonic(), 0.001))
            try:
                first = await call.read()
            except grpc.aio.AioRpcError as exc:
                replica.outstanding -= 1
                call.cancel()
                self.failed(replica, exc.code())
                tried.add(replica.name)
                attempt += 1
                others = [r for r in self.replicas.values() if request.model in r.models and r.name not in tried]
                if exc.code() not in RETRYABLE or attempt > self.retries or not others:
                    raise
                delay = min(self.backoff(attempt), deadline - time.monotonic())
                if delay < 0:
                    raise
                metrics.upstream_error("inference", exc.code().name)  # absorbed: the caller never sees it
                metrics.INFERENCE_RETRIES.labels(exc.code().name).inc()
                log.info("retrying on another replica", extra={"f_replica": replica.name, "f_attempt": attempt,
                                                               "f_code": exc.code().name, "f_backoff_s": delay})
                await self.sleep(delay)
                continue
            except BaseException:  # cancelled: the client left
                replica.outstanding -= 1
                replica.trial = False
                call.cancel()
                raise
            if replica.trial or replica.failures:
                self.succeeded(replica)
            return call, first, replica

    @staticmethod
    def release(replica: Replica) -> None:
        replica.outstanding -= 1

    def healthy(self) -> int:
        return sum(1 for r in self.replicas.values() if r.up and r.models)
