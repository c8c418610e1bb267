"""``python -m flotilla.healthcheck``: the mTLS gRPC readiness probe of the chart and the images."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.grpcserver import GrpcService, start_server
from flotilla.healthcheck import main, tls_from_env
from flotilla.tls import TLSFiles, ensure_dev_certs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, TLSFiles]:
    return ensure_dev_certs(tmp_path / "certs", ["guard", "gateway"])


@pytest.fixture
async def guard(certs: dict[str, TLSFiles]) -> AsyncIterator[tuple[GrpcService, int]]:
    port = _free_port()
    svc = await start_server(f"127.0.0.1:{port}", certs["guard"], [], ["flotilla.v1.Guard"])
    try:
        yield svc, port
    finally:
        await svc.server.stop(None)


def _guard_env(files: TLSFiles, port: int) -> dict[str, str]:
    return {
        "FLOTILLA_GUARD_PORT": str(port),
        "FLOTILLA_GUARD_TLS_CA": str(files.ca),
        "FLOTILLA_GUARD_TLS_CERT": str(files.cert),
        "FLOTILLA_GUARD_TLS_KEY": str(files.key),
    }


async def _probe(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the probe as Kubernetes does: a separate process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flotilla.healthcheck",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_serving_server_passes_with_the_services_own_env(guard, certs) -> None:
    svc, port = guard
    await svc.set_serving(True)
    rc, out = await _probe("--env-prefix", "FLOTILLA_GUARD_", env=_guard_env(certs["guard"], port))
    assert rc == 0, out
    assert "SERVING" in out
    rc, out = await _probe(
        "--env-prefix", "FLOTILLA_GUARD_", "--service", "flotilla.v1.Guard", env=_guard_env(certs["guard"], port)
    )
    assert rc == 0, out


async def test_not_serving_or_draining_fails(guard, certs) -> None:
    svc, port = guard
    await svc.set_serving(False)  # what a draining server answers after SIGTERM
    rc, out = await _probe("--env-prefix", "FLOTILLA_GUARD_", env=_guard_env(certs["guard"], port))
    assert rc == 1 and "NOT_SERVING" in out, out


async def test_explicit_files_and_target(guard, certs) -> None:
    svc, port = guard
    await svc.set_serving(True)
    gw = certs["gateway"]  # any certificate of the fleet CA is a valid client
    rc, out = await _probe(
        "--target", f"127.0.0.1:{port}", "--ca", str(gw.ca), "--cert", str(gw.cert), "--key", str(gw.key), env={}
    )
    assert rc == 0, out


async def test_nothing_listening_or_wrong_ca_fails(guard, certs, tmp_path: Path) -> None:
    svc, port = guard
    await svc.set_serving(True)
    rogue = ensure_dev_certs(tmp_path / "rogue", ["guard"])["guard"]
    rc, out = await _probe("--env-prefix", "FLOTILLA_GUARD_", "--timeout", "2", env=_guard_env(rogue, port))
    assert rc == 1 and "UNAVAILABLE" in out, out
    rc, out = await _probe(
        "--env-prefix", "FLOTILLA_GUARD_", "--timeout", "2", env=_guard_env(certs["guard"], _free_port())
    )
    assert rc == 1, out


def test_usage_errors(tmp_path: Path) -> None:
    assert main([], env={}) == 2  # neither a target nor a prefix with a port
    assert main(["--target", "127.0.0.1:1"], env={}) == 2  # no TLS material
    missing = {"FLOTILLA_GUARD_PORT": "1", "FLOTILLA_GUARD_TLS_CA": str(tmp_path / "nope.pem")}
    assert main(["--env-prefix", "FLOTILLA_GUARD_"], env=missing) == 2


def test_tls_defaults_follow_service_settings(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOTILLA_HOME", str(tmp_path))
    files = tls_from_env("FLOTILLA_RAG_", {})
    assert files == TLSFiles(
        ca=tmp_path / "certs" / "ca.pem", cert=tmp_path / "certs" / "rag.pem", key=tmp_path / "certs" / "rag.key"
    )
