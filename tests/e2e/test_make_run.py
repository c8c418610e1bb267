"""`flotilla run` (what `make run` starts) as a user runs it: it serves the README's SDK snippet and
stops everything — services, vLLM engine processes, embedded Postgres — on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from openai import OpenAI

from tests.conftest import MODEL_NAME, free_port, pg_dir

pytestmark = pytest.mark.fleet


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_flotilla_run_serves_and_stops_cleanly(tmp_path: Path, model_dir: Path) -> None:
    ports = {name: free_port() for name in ("gateway", "inference", "guard", "rag")}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # embedded Postgres, like make run
    env.update({f"FLOTILLA_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    home = pg_dir("run")  # holds the embedded Postgres: outside pytest's tree (see pg_dir)
    env.update({"FLOTILLA_HOME": str(home), "FLOTILLA_INFERENCE_MODEL": str(model_dir),
                "FLOTILLA_INFERENCE_METRICS_PORT": str(free_port())})
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "flotilla.cli", "run"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while "Fleet ready" not in (tmp_path / "run.log").read_text():
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "fleet did not start in 300 s"
            time.sleep(1)
        printed = (tmp_path / "run.log").read_text()
        base_url = f"http://127.0.0.1:{ports['gateway']}/v1"
        assert base_url in printed and "from openai import OpenAI" in printed

        key = (home / "dev-api-key").read_text().strip()
        assert f'api_key="{key}"' in printed  # the snippet printed is ready to paste
        client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "What is the capital of France?"}],
            max_tokens=16,
        )
        assert reply.choices[0].message.content.strip()

        tree = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        postmaster = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert len(tree) >= 4 and _alive(postmaster)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        time.sleep(1)
        left = [pid for pid in [*tree, postmaster] if _alive(pid)]
        assert left == [], f"processes left behind: {left}"
        assert not (home / "pgdata" / "postmaster.pid").exists()  # Postgres shut down cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
