"""The local fleet behind ``make run`` and the end-to-end tests.

It creates the dev CA and certificates, prepares SmolLM2, starts embedded Postgres (unless
``DATABASE_URL`` is set) and applies migrations, then starts the four services as child processes —
each in its own process group so that stopping the fleet leaves nothing behind — and waits until every
gRPC health check answers SERVING over mTLS and the gateway reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.migrate import migrate
from flotilla.processes import stop_group
from flotilla.tls import TLSFiles, channel_credentials, ensure_dev_certs

log = logging.getLogger(__name__)

# Start order; stopped in reverse (gateway first, so no new work reaches the others).
SERVICES = ("inference", "guard", "rag", "gateway")  # certificates; processes: FleetConfig.processes()
DEFAULT_PORTS = {"gateway": 8000, "inference": 50051, "guard": 50052, "rag": 50053}


def _env_port(service: str) -> int:
    return int(os.environ.get(f"FLOTILLA_{service.upper()}_PORT", DEFAULT_PORTS[service]))


@dataclass
class FleetConfig:
    home: Path
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: {s: _env_port(s) for s in DEFAULT_PORTS})
    model_dir: Path | None = None  # default: $home/models/SmolLM2-135M-Instruct (prepared on first start)
    database_url: str | None = None  # default: $DATABASE_URL, else embedded Postgres under $home/pgdata
    startup_timeout_s: float = 600.0  # two vLLM engines on a busy 2-core machine can take minutes
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every service
    extra_inference_ports: list[int] = field(default_factory=list)  # more inference replicas of the same model
    # /metrics port per process ("inference", "inference-1", "guard", "rag"); unset: the service default (0 disables).
    # The gateway serves /metrics on its HTTP port.
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> FleetConfig:
        home = Path(os.environ.get("FLOTILLA_HOME", ".flotilla")).resolve()
        model = os.environ.get("FLOTILLA_INFERENCE_MODEL")  # a prepared folder or HF id: used as is
        return cls(
            home=home,
            host=os.environ.get("FLOTILLA_HOST", "127.0.0.1"),
            database_url=os.environ.get("DATABASE_URL"),
            model_dir=Path(model) if model else None,
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.ports['gateway']}/v1"

    @property
    def inference_ports(self) -> list[int]:
        return [self.ports["inference"], *self.extra_inference_ports]

    def processes(self) -> list[tuple[str, str, int]]:
        """(process name, service, port) in start order; stopped in reverse (gateway first)."""
        replicas = [("inference" if i == 0 else f"inference-{i}", "inference", port)
                    for i, port in enumerate(self.inference_ports)]
        return [*replicas, *((name, name, self.ports[name]) for name in ("guard", "rag", "gateway"))]


class FleetError(RuntimeError):
    pass


class DevFleet:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent; also on context-manager exit)."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg: Any = None
        self.database_url: str | None = None
        self.certs: dict[str, TLSFiles] = {}
        self.log_dir = config.home / "logs"
        self.api_key = ""  # the dev key `make run` prints (kept in $home/dev-api-key)
        self.env: dict[str, str] = {}  # the environment the services were started with

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        cfg.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.certs = ensure_dev_certs(cfg.home / "certs")
        model_dir = cfg.model_dir or cfg.home / "models" / "SmolLM2-135M-Instruct"
        if cfg.model_dir is None:
            from services.inference.prepare import prepare_smollm2

            prepare_smollm2(model_dir)
        self.database_url = cfg.database_url or self._start_postgres()
        asyncio.run(migrate(self.database_url))
        self.api_key = asyncio.run(self._dev_key())
        env = self.env = self._service_env(model_dir)
        try:
            for name, service, port in cfg.processes():
                if service == "gateway":
                    self._wait_grpc_healthy([n for n, s, _ in cfg.processes() if s != "gateway"])
                extra = {f"FLOTILLA_{service.upper()}_PORT": str(port)}
                if name in cfg.metrics_ports:
                    extra[f"FLOTILLA_{service.upper()}_METRICS_PORT"] = str(cfg.metrics_ports[name])
                self._spawn(name, service, {**env, **extra})
            self._wait_gateway_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, grace_s: float = 30.0) -> None:
        for name, _, _ in reversed(self.config.processes()):
            proc = self.procs.get(name)
            if proc is not None and not stop_group(proc, grace_s):
                log.warning("%s did not stop in %.0fs; killed it", name, grace_s)
        self.procs.clear()
        if self.pg is not None:
            self.pg.cleanup()
            self.pg = None

    def __enter__(self) -> DevFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pieces --------------------------------------------------------------------------------------

    async def _dev_key(self) -> str:
        """The local dev key: created once (no limits), kept in ``$home/dev-api-key`` and reused."""
        import asyncpg

        from services.gateway.keys import create_key, parse

        path = self.config.home / "dev-api-key"
        conn = await asyncpg.connect(self.database_url)
        try:
            if path.exists():
                key = path.read_text().strip()
                found = await conn.fetchval(
                    "SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL", parse(key) or ""
                )
                if found:
                    return key
            await conn.execute("DELETE FROM api_keys WHERE name = 'dev' AND revoked_at IS NOT NULL")
            await conn.execute("UPDATE api_keys SET name = name || '-' || id WHERE name = 'dev'")
            _, key = await create_key(conn, "dev", tenant_id="default")
        finally:
            await conn.close()
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    def _start_postgres(self) -> str:
        from flotilla import pgembedded

        self.pg = pgembedded.start(self.config.home / "pgdata", cleanup_mode="stop")  # with Flotilla's settings
        return self.pg.get_uri()

    def _service_env(self, model_dir: Path) -> dict[str, str]:
        cfg = self.config
        home = cfg.home
        env = {**os.environ}
        env.update(
            {
                "FLOTILLA_HOME": str(home),
                "DATABASE_URL": self.database_url or "",
                "HF_HUB_OFFLINE": "1",
                "VLLM_CACHE_ROOT": str(home / "vllm-cache"),
                "VLLM_RPC_BASE_PATH": str(self._rpc_dir()),
                "FLOTILLA_GATEWAY_INFERENCE_TARGETS": ",".join(f"{cfg.host}:{p}" for p in cfg.inference_ports),
                "FLOTILLA_GATEWAY_GUARD_TARGET": f"{cfg.host}:{cfg.ports['guard']}",
                "FLOTILLA_GATEWAY_RAG_TARGET": f"{cfg.host}:{cfg.ports['rag']}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name in SERVICES:
            env[f"FLOTILLA_{name.upper()}_HOST"] = cfg.host
            env[f"FLOTILLA_{name.upper()}_PORT"] = str(cfg.ports[name])
            env[f"FLOTILLA_{name.upper()}_TLS_CA"] = str(self.certs[name].ca)
            env[f"FLOTILLA_{name.upper()}_TLS_CERT"] = str(self.certs[name].cert)
            env[f"FLOTILLA_{name.upper()}_TLS_KEY"] = str(self.certs[name].key)
        # CPU defaults measured on our 2-core dev machines; any of them can be overridden from outside.
        for key, value in {
            "FLOTILLA_INFERENCE_MODEL": str(model_dir),
            "FLOTILLA_INFERENCE_DTYPE": "bfloat16",
            "FLOTILLA_INFERENCE_ENFORCE_EAGER": "true",
            "FLOTILLA_INFERENCE_MAX_MODEL_LEN": "2048",
            "FLOTILLA_INFERENCE_CPU_KVCACHE_SPACE_GIB": "1",
            # vLLM on CPU takes every core it can get; the guard shares them and its scans then wait their turn
            # for seconds under load (in production it has its own pods), so the local deadline is longer.
            "FLOTILLA_GATEWAY_GUARD_TIMEOUT_S": "15",
        }.items():
            env.setdefault(key, value)
        env.update(cfg.env)
        return env

    def _rpc_dir(self) -> Path:
        """vLLM's ZMQ IPC sockets; unix socket paths must stay under 107 bytes (vLLM appends a uuid)."""
        path = self.config.home / "vllm-rpc"
        if len(str(path)) > 60:
            digest = hashlib.sha1(str(self.config.home).encode()).hexdigest()[:10]
            path = Path(tempfile.gettempdir()) / f"flotilla-rpc-{digest}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _spawn(self, name: str, service: str, env: dict[str, str]) -> None:
        logfile = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: vLLM's engine processes are stopped with it
        )
        logfile.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise FleetError(
                    f"{name} exited with code {proc.returncode} during start-up:\n{self.log_tail(name)}"
                )

    def port_of(self, name: str) -> int:
        return next(port for n, _, port in self.config.processes() if n == name)

    def _wait_grpc_healthy(self, names: list[str], ports: dict[str, int] | None = None) -> None:
        """Block until each named gRPC service answers SERVING on its health check.

        Uses gRPC's synchronous API on purpose: this runs both outside any event loop (fleet start-up) and
        inside a test's running loop, and a ``grpc.aio`` channel would have to run on a throwaway event loop
        (``asyncio.run``, in a thread when a loop is already running). gRPC's asyncio poller is shared by the
        whole process, and binding it to short-lived loops beside the test session's loop made later
        in-process ``grpc.aio`` calls hang in CI."""
        ports = ports or {n: self.port_of(n) for n in names}
        credentials = channel_credentials(self.certs["gateway"])
        deadline = time.monotonic() + self.config.startup_timeout_s
        pending = set(names)
        channels = {n: grpc.secure_channel(f"{self.config.host}:{ports[n]}", credentials) for n in names}
        try:
            while pending:
                self._check_alive()
                for n in list(pending):
                    try:
                        resp = health_pb2_grpc.HealthStub(channels[n]).Check(
                            health_pb2.HealthCheckRequest(), timeout=1.0
                        )
                        if resp.status == health_pb2.HealthCheckResponse.SERVING:
                            pending.discard(n)
                    except grpc.RpcError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise FleetError(f"not healthy after {self.config.startup_timeout_s:.0f}s: {sorted(pending)}")
                if pending:
                    time.sleep(0.5)
        finally:
            for ch in channels.values():
                ch.close()

    def _wait_gateway_ready(self, name: str = "gateway", port: int | None = None, path: str = "/readyz") -> None:
        url = f"http://{self.config.host}:{port or self.config.ports['gateway']}{path}"
        deadline = time.monotonic() + 60
        while True:
            self._check_alive()
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise FleetError(f"{name} not ready:\n{self.log_tail(name)}")
            time.sleep(0.3)

    @contextlib.contextmanager
    def extra_gateway(
        self, name: str, port: int, env: dict[str, str] | None = None, ready_path: str = "/readyz"
    ) -> Iterator[str]:
        """Another gateway process against this fleet's services (a second replica, or one with other
        settings); yields its base URL once ``ready_path`` answers 200 (``/health`` for a gateway whose
        upstreams are down on purpose) and stops it afterwards (``procs[name]`` is the process meanwhile)."""
        self._spawn(name, "gateway", {**self.env, "FLOTILLA_GATEWAY_PORT": str(port), **(env or {})})
        try:
            self._wait_gateway_ready(name, port, ready_path)
            yield f"http://{self.config.host}:{port}"
        finally:
            self._stop_extra(name)

    @contextlib.contextmanager
    def extra_service(
        self, name: str, service: str, port: int, env: dict[str, str] | None = None
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Another gRPC process (``inference``, ``guard`` or ``rag``) with this fleet's certificates and
        settings, on ``port``; yields the process once its health check answers SERVING and stops it
        afterwards. Tests that kill or stop a process start their own this way, not the fleet's."""
        prefix = f"FLOTILLA_{service.upper()}_"
        self._spawn(name, service, {**self.env, f"{prefix}PORT": str(port), f"{prefix}METRICS_PORT": "0",
                                    **(env or {})})
        try:
            self._wait_grpc_healthy([name], {name: port})
            yield self.procs[name]
        finally:
            self._stop_extra(name)

    def _stop_extra(self, name: str, grace_s: float = 20.0) -> None:
        stop_group(self.procs.pop(name), grace_s)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
