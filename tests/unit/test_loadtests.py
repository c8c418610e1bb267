"""loadtests/: the request measurements, the prompt set, the summary, the SLO gates, and whole headless Locust
runs (standalone, distributed, failing) against FakeGateway — a small real HTTP server with fixed timings, so
the measured TTFT/ITL/tokens can be checked. The real fleet is driven by tests/e2e/test_loadtest_smoke.py."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import httpx
import pytest

from loadtests import prompts, report, run, slo
from loadtests.openai_load import Sample, request, stream
from tests.unit.loadtest_fake_gateway import FakeGateway

# ---------------------------------------------------------------------------------------------------
# one measured request


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def mock_client(status: int, content: bytes, headers: dict[str, str] | None = None) -> httpx.Client:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers or {})

    return httpx.Client(base_url="http://fake", transport=httpx.MockTransport(handler))


CHUNK = '{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}'
USAGE = '{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}'


def test_stream_timings_against_a_server_with_known_timings() -> None:
    with FakeGateway(tokens=5, ttft_s=0.08, gap_s=0.03) as fake:
        client = httpx.Client(base_url=fake.url, headers={"authorization": "Bearer fake-key"})
        s = stream(client, "/v1/chat/completions",
                   {"model": "fake-model", "messages": [{"role": "user", "content": "x"}]}, "chat.stream")
    assert s.ok, s.error
    assert s.status == 200 and s.completion_tokens == 5 and s.prompt_tokens == 7
    assert s.finish_reason == "length"
    assert 0.08 <= s.ttft_s < 0.5  # the role-only first event does not count as a token
    assert len(s.itl_s) == 4 and all(0.025 <= g < 0.3 for g in s.itl_s)
    assert s.latency_s >= s.ttft_s + sum(s.itl_s) - 1e-6
    assert s.tokens_per_s == pytest.approx(5 / s.latency_s)


def test_stream_failures_are_samples_not_exceptions() -> None:
    body = {"model": "m", "messages": []}
    s = stream(mock_client(200, sse(CHUNK, '{"error": {"message": "blocked", "code": "content_policy_violation"}}',
                                    "[DONE]")), "/v1/chat/completions", body, "chat.stream")
    assert not s.ok and "blocked" in s.error and s.error_code == "content_policy_violation"
    s = stream(mock_client(200, sse(CHUNK, USAGE)), "/v1/chat/completions", body, "chat.stream")
    assert not s.ok and "[DONE]" in s.error  # cut off
    s = stream(mock_client(200, sse(CHUNK, "[DONE]")), "/v1/chat/completions", body, "chat.stream")
    assert not s.ok and "usage" in s.error
    s = stream(mock_client(200, sse(CHUNK, USAGE, "[DONE]")), "/v1/chat/completions", body, "chat.stream")
    assert s.ok and s.completion_tokens == 3 and s.ttft_s is not None
    eos = '{"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}'  # the model stopped at once
    one = '{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}'
    s = stream(mock_client(200, sse(eos, one, "[DONE]")), "/v1/completions", body, "completions.stream")
    assert s.ok and s.ttft_s is not None and s.itl_s == [] and s.finish_reason == "stop"
    err = b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}'
    s = stream(mock_client(429, err), "/v1/chat/completions", body, "chat.stream")
    assert (s.ok, s.status, s.error_code, s.error) == (False, 429, "rate_limit_exceeded", "Rate limit reached")
    assert not s.route_missing

    def refuse(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = httpx.Client(base_url="http://fake", transport=httpx.MockTransport(refuse))
    s = stream(client, "/v1/chat/completions", body, "chat.stream")
    assert not s.ok and s.status == 0 and "ConnectError" in s.error


def test_route_missing_is_a_404_without_an_error_code() -> None:
    unknown = b'{"error": {"message": "Unknown request URL.", "type": "invalid_request_error", "code": null}}'
    assert request(mock_client(404, unknown), "/v1/embeddings", {"model": "m", "input": "x"}, "e").route_missing
    assert request(mock_client(404, b'{"detail": "Not Found"}'), "/v1/embeddings", {"input": "x"}, "e").route_missing
    model = b'{"error": {"message": "The model does not exist", "code": "model_not_found"}}'
    assert not request(mock_client(404, model), "/v1/embeddings", {"model": "m", "input": "x"}, "e").route_missing


def test_non_streamed_requests() -> None:
    chat = (b'{"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "ok"}, '
            b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}')
    s = request(mock_client(200, chat, {"x-flotilla-rag-chunks": "3"}), "/v1/chat/completions", {}, "chat")
    assert s.ok and s.completion_tokens == 2 and s.rag_chunks == 3 and s.ttft_s is None
    emb = b'{"object": "list", "data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 4}}'
    assert request(mock_client(200, emb), "/v1/embeddings", {"input": ["a"]}, "embeddings").ok
    s = request(mock_client(200, emb), "/v1/embeddings", {"input": ["a", "b"]}, "embeddings")
    assert not s.ok and "expected 2 embeddings, got 1" in s.error


# ---------------------------------------------------------------------------------------------------
# the workload


def test_prompt_set_has_a_realistic_spread_that_fits_the_context() -> None:
    ps = prompts.prompts()
    kinds = {k: [p for p in ps if p.kind == k] for k in prompts.KINDS}
    assert {k: len(v) for k, v in kinds.items()} == {"short": 30, "medium": 14, "long": 6}
    assert max(len(p.text) for p in kinds["short"]) < 100
    assert all(600 < len(p.text) < 1200 for p in kinds["medium"])
    assert all(3000 < len(p.text) for p in kinds["long"])
    # SmolLM2 averages ~4.6 characters per token on these; 3 is a safe bound against the 2048 context.
    assert all(len(p.text) / 3 + p.max_tokens < 2048 for p in ps)
    assert len({p.id for p in ps}) == len(ps) and all(16 <= p.max_tokens <= 160 for p in ps)
    assert ps[0].capped(16) == 16 and ps[0].capped(0) == ps[0].max_tokens
    assert len(prompts.rag_documents()) == 3 and len(prompts.rag_questions()) >= 10


# ---------------------------------------------------------------------------------------------------
# summary, series and SLO gates


def rec(endpoint: str, t: float, latency: float, tokens: int, ok: bool = True, ttft: float | None = None,
        itl: list[float] | None = None) -> dict:
    return {"kind": "request", "endpoint": endpoint, "t_start": t, "latency_s": latency, "ok": ok,
            "status": 200 if ok else 503, "error": "" if ok else "unavailable", "ttft_s": ttft,
            "itl_s": itl or [], "prompt_tokens": 10, "completion_tokens": tokens if ok else 0}


SAMPLES = [
    rec("chat.stream", 100.0, 2.0, 20, ttft=0.5, itl=[0.1] * 19),
    rec("chat.stream", 101.0, 4.0, 40, ttft=1.5, itl=[0.05] * 39),
    rec("chat", 102.0, 3.0, 30),
    rec("chat", 103.0, 1.0, 0, ok=False),
]


def test_summary_numbers() -> None:
    s = report.summarize(SAMPLES, {"embeddings": "404"})
    assert s["window_s"] == 5.0  # 100.0 → 105.0
    a = s["all"]
    assert (a["requests"], a["failures"], a["error_rate"]) == (4, 1, 0.25)
    assert a["output_tokens_per_s"] == 90 / 5.0
    assert a["requests_per_s"] == 3 / 5.0
    assert a["ttft_p50_ms"] == 1000.0 and a["ttft_p95_ms"] == pytest.approx(1450.0)
    assert a["tokens_per_s_p50"] == 10.0  # 20/2, 40/4, 30/3
    assert s["endpoints"]["chat"]["ttft_p50_ms"] is None and s["endpoints"]["chat"]["failures"] == 1
    assert s["skipped"] == {"embeddings": "404"}
    assert s["errors"] == {"chat: HTTP 503 unavailable": 1}


def test_rates_count_only_the_load_window() -> None:
    s = report.summarize(SAMPLES, {}, stop=103.0)  # the run time was up at 103: the rest is drain
    assert s["window_s"] == 3.0 and s["drain_s"] == 2.0
    # 20 tokens over [100.5, 102] + 40 over [102.5, 105] (0.5 s of 2.5 inside) + 30 over [102, 105] (1 of 3)
    assert s["all"]["output_tokens_per_s"] == pytest.approx((20 + 8 + 10) / 3, abs=0.01)
    assert s["all"]["requests_per_s"] == pytest.approx(1 / 3, abs=0.001)  # only the first ended by 103
    assert s["all"]["requests"] == 4 and s["all"]["ttft_p50_ms"] == 1000.0  # percentiles: every request


def test_throughput_series_conserves_tokens_and_requests() -> None:
    t0, t1 = report.window_of(SAMPLES)
    _, tok, rps = report.throughput_series(SAMPLES, t0, t1, bin_s=0.5)
    assert tok.sum() * 0.5 == pytest.approx(90.0)
    assert rps.sum() * 0.5 == pytest.approx(3.0)
    assert tok[0] == 0.0  # the first token arrives 0.5 s after the first request
    assert tok[1] == pytest.approx(20 / 1.5)  # 100.5–101: only the first stream, 20 tokens over 1.5 s


SLO_TEXT = """
gates:
  - {metric: error_rate, max: 0.3}
  - {metric: ttft_p95_ms, endpoint: chat.stream, max: 1000}
  - {metric: output_tokens_per_s, min: 10}
  - {metric: itl_p50_ms, endpoint: embeddings, max: 5, required: false}
  - {metric: itl_p50_ms, endpoint: embeddings, max: 5}
"""


def test_slo_gates(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_TEXT)
    results = slo.evaluate(slo.load(path), report.summarize(SAMPLES, {}))
    assert [r.status for r in results] == ["pass", "fail", "pass", "no data", "no data"]
    assert [r.passed for r in results] == [True, False, True, True, False]
    assert "VIOLATED (2 of 5 gates)" in report.verdict_text(results)
    for bad, why in [("gates: []", "non-empty"), ("gates: [{metric: ttft_p95_ms}]", "needs 'max' or 'min'"),
                     ("gates: [{metric: ttft, max: 1}]", "not one of"),
                     ("gates: [{metric: ttft_p95_ms, max: 1, maxx: 2}]", "unknown keys")]:
        path.write_text(bad)
        with pytest.raises(slo.SLOError, match=why):
            slo.load(path)


def test_shipped_slo_files_load() -> None:
    root = Path(run.HERE)
    for path in (root / "slo.yaml", root / "k8s" / "slo.yaml"):
        gates = slo.load(path)
        assert {g.metric for g in gates} >= {"error_rate", "ttft_p95_ms", "tokens_per_s_p50"}


def test_run_time_syntax() -> None:
    assert [run.seconds(t) for t in ("90", "90s", "2m", "1h30m")] == [90, 90, 120, 5400]
    with pytest.raises(Exception, match="not a duration"):
        run.seconds("2 minutes")


# ---------------------------------------------------------------------------------------------------
# whole headless runs: real Locust processes against FakeGateway


def locust_rows(results: Path) -> dict[str, dict[str, str]]:
    with (results / "locust_stats.csv").open() as fh:
        return {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(fh)}


def requests_in(results: Path) -> list[dict]:
    return report.load_samples(results / "samples.jsonl")[0]


def stop_of(results: Path) -> float | None:
    return report.load_samples(results / "samples.jsonl")[3]


def lenient(tmp_path: Path) -> Path:
    path = tmp_path / "lenient.yaml"
    path.write_text("gates:\n  - {metric: error_rate, max: 0}\n  - {metric: ttft_p95_ms, max: 2000}\n"
                    "  - {metric: tokens_per_s_p50, min: 5}\n")
    return path


def errors_only(tmp_path: Path) -> Path:
    path = tmp_path / "errors.yaml"
    path.write_text("gates:\n  - {metric: error_rate, max: 0}\n")
    return path


@pytest.mark.timeout(120)
def test_headless_mixed_run_reports_plots_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeGateway(tokens=6, ttft_s=0.06, gap_s=0.02) as fake:
        rc = run.main(["--host", fake.url + "/v1", "--api-key", "fake-key", "--users", "3", "--spawn-rate", "3",
                       "--run-time", "3s", "--stop-timeout", "10", "--slo", str(lenient(tmp_path)),
                       "--out", str(out), "--max-tokens", "6", "--loglevel", "WARNING"])
        store_builds = len(fake.stores)
        seen = list(fake.seen)
    assert rc == 0
    # every prompt is made unique (prefix cache) and each sample names the bundled prompt it sent
    assert seen and all(re.match(r"Ticket \d{7}: ", text) for text in seen)
    ids = {p.id for p in prompts.prompts()}
    for s in requests_in(out):
        if s["endpoint"] in ("chat.stream", "chat", "completions.stream"):
            assert s["prompt_id"] in ids
        elif s["endpoint"] == "rag.stream":
            assert s["prompt_id"].startswith("rag-")
    assert sum(fake.counts.values()) == sum(1 for s in requests_in(out) if s["endpoint"] != "embeddings")
    for name in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "samples.jsonl", "summary.json",
                 "meta.json", "throughput.png", "ttft.png", "latency_cdf.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["endpoints"]) == {"chat.stream", "chat", "completions.stream", "embeddings", "rag.stream"}
    a = summary["all"]
    assert a["failures"] == 0 and a["completion_tokens"] > 0
    assert 60 <= a["ttft_p50_ms"] < 1000 and 18 <= a["itl_p50_ms"] < 500
    assert summary["slo"]["passed"] and summary["meta"]["users"] == 3 and summary["meta"]["profile"] == "MixedUser"
    assert store_builds == 1  # one vector store per process, built once and shared by its users
    stop = stop_of(out)
    assert stop is not None and summary["drain_s"] >= 0
    assert summary["window_s"] == pytest.approx(stop - min(s["t_start"] for s in requests_in(out)), abs=0.01)
    rows = locust_rows(out)
    for row in ("TTFT chat.stream", "ITL chat.stream", "TOK/S chat.stream", "POST rag.stream", "POST embeddings"):
        assert int(rows[row]["Request Count"]) > 0, row
    # Locust's own request count equals the recorded samples: every request fired exactly one POST event.
    assert summary["locust"]["requests"] == a["requests"] == len(requests_in(out))
    assert int(rows["TTFT chat.stream"]["Request Count"]) == summary["endpoints"]["chat.stream"]["requests"]


@pytest.mark.timeout(120)
def test_failures_violate_the_slo_and_exit_non_zero(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeGateway(tokens=3, ttft_s=0.02, gap_s=0.01, fail_every=3) as fake:
        rc = run.main(["--host", fake.url, "--api-key", "fake-key", "--users", "2", "--spawn-rate", "2",
                       "--run-time", "3s", "--stop-timeout", "10", "--slo", str(lenient(tmp_path)),
                       "--out", str(out), "--profile", "StreamingChatUser", "--loglevel", "WARNING"])
    assert rc == 1
    summary = json.loads((out / "summary.json").read_text())
    assert 0.2 < summary["all"]["error_rate"] < 0.5
    assert any("HTTP 503" in e for e in summary["errors"])
    gates = {g["metric"]: g for g in summary["slo"]["gates"]}
    assert gates["error_rate"]["status"] == "fail" and gates["ttft_p95_ms"]["status"] == "pass"
    assert int(locust_rows(out)["POST chat.stream"]["Failure Count"]) > 0
    # re-evaluating the same results needs no load: without gates it passes, with them it fails again
    assert report.main([str(out), "--no-slo"]) == 0
    assert report.main([str(out), "--slo", str(lenient(tmp_path))]) == 1


@pytest.mark.timeout(150)
def test_distributed_run_ships_worker_samples_and_skips_missing_routes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # ~2.4 s per request, so that users are mid-request when the run time is up
    with FakeGateway(tokens=8, ttft_s=0.3, gap_s=0.3, embeddings=False, rag=False) as fake:
        rc = run.main(["--host", fake.url, "--api-key", "fake-key", "--users", "4", "--spawn-rate", "4",
                       "--run-time", "4s", "--stop-timeout", "10", "--workers", "2", "--slo",
                       str(errors_only(tmp_path)), "--out", str(out), "--loglevel", "WARNING",
                       "--profile", "MixedUser,EmbeddingsUser,RagChatUser"])
        served = sum(fake.counts.values())
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["meta"]["workers"] == 2
    samples = requests_in(out)
    assert all(s["worker"] for s in samples)  # every request came from a worker, through the master
    assert summary["locust"]["requests"] == len(samples) > 0
    # the workers drained before the master quit: every request the gateway served was recorded, in flight or not
    assert len(samples) == served
    assert summary["drain_s"] > 0  # and some of them were still in flight when the run time was up
    assert set(summary["skipped"]) == {"embeddings", "rag.stream"}
    assert "404" in summary["skipped"]["embeddings"] and "vector_stores" in summary["skipped"]["rag.stream"]
    assert summary["all"]["failures"] == 0
    assert set(summary["endpoints"]) <= {"chat.stream", "chat", "completions.stream"}


def test_sample_record_round_trips() -> None:
    s = Sample(endpoint="chat", t_start=1.0, latency_s=2.0, ok=True, completion_tokens=4, itl_s=[0.1234567])
    assert json.loads(json.dumps(s.to_json()))["itl_s"] == [0.123457]
    assert s.t_end == 3.0 and s.tokens_per_s == 2.0
