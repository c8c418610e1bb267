"""A run's report: ``summary.json``, PNG plots and the SLO verdict, from the samples the locustfile recorded.

    python -m loadtests.report loadtests/results/20261102-101500 [--slo loadtests/slo.yaml | --no-slo]

re-evaluates a finished run (e.g. one copied out of a cluster, or against a stricter SLO file); exits 1 when a
gate fails, 2 when the run has no samples. ``make loadtest`` calls the same code after Locust exits.

Definitions (client side, from ``samples.jsonl``): the window is from the first request sent to the last
answer received; ``output_tokens_per_s`` is the completion tokens of successful requests over that window
(the fleet's aggregate throughput); ``tokens_per_s_*`` are percentiles of per-request tokens/s
(completion tokens over end-to-end latency); TTFT and ITL are over streamed requests; ``error_rate`` is
failed over all requests. Skipped routes (404) are listed under ``skipped`` and count nowhere else.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from loadtests import slo

GENERATING = ("chat.stream", "chat", "completions.stream", "rag.stream")
PERCENTILES = (50, 90, 95, 99)


def load_samples(path: Path) -> tuple[list[dict[str, Any]], dict[str, str], int, float | None]:
    """Requests, skipped routes (endpoint → reason), how many distinct workers sent records, and when the run
    time was up (None for a run that never got there)."""
    requests: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    workers: set[str] = set()
    stop: float | None = None
    if not path.exists():
        return requests, skipped, 0, None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("worker"):
            workers.add(rec["worker"])
        if rec.get("kind") == "skip":
            skipped.setdefault(rec["endpoint"], rec["reason"])
        elif rec.get("kind") == "request":
            requests.append(rec)
        elif rec.get("kind") == "stop" and stop is None:
            stop = float(rec["t"])
    return requests, skipped, len(workers), stop


def _pct(values: list[float], q: float, scale: float = 1.0) -> float | None:
    return round(float(np.percentile(values, q)) * scale, 3) if values else None


def token_span(s: dict[str, Any]) -> tuple[float, float]:
    """When a request's output tokens were produced: from its first token (streams) or its start (otherwise)
    to its end, spread evenly over that span."""
    end = s["t_start"] + s["latency_s"]
    return min(s["t_start"] + (s.get("ttft_s") or 0.0), end), end


def tokens_within(s: dict[str, Any], a: float, b: float) -> float:
    first, end = token_span(s)
    k = s["completion_tokens"] if s["ok"] else 0
    if k <= 0:
        return 0.0
    if end - first <= 1e-6:
        return float(k) if a <= end < b else 0.0
    return k * max(0.0, min(end, b) - max(first, a)) / (end - first)


def _stats(samples: list[dict[str, Any]], window: tuple[float, float]) -> dict[str, Any]:
    """Counts and percentiles over every request; rates over the load window (first request sent → run time
    up): tokens produced and requests completed inside it, so the drain after the run time does not count."""
    t0, t1 = window
    window_s = t1 - t0
    ok = [s for s in samples if s["ok"]]
    latency = [s["latency_s"] for s in ok]
    ttft = [s["ttft_s"] for s in ok if s.get("ttft_s") is not None]
    itl = [g for s in ok for g in s.get("itl_s", ())]
    tps = [s["completion_tokens"] / s["latency_s"] for s in ok
           if s["endpoint"] in GENERATING and s["completion_tokens"] > 0 and s["latency_s"] > 0]
    tokens = sum(s["completion_tokens"] for s in ok)
    in_window = sum(tokens_within(s, t0, t1) for s in ok)
    completed = sum(1 for s in ok if s["t_start"] + s["latency_s"] <= t1)
    out: dict[str, Any] = {
        "requests": len(samples),
        "failures": len(samples) - len(ok),
        "error_rate": round((len(samples) - len(ok)) / len(samples), 4) if samples else None,
        "requests_per_s": round(completed / window_s, 3) if window_s > 0 and samples else None,
        "completion_tokens": tokens,
        "prompt_tokens": sum(s["prompt_tokens"] for s in ok),
        "output_tokens_per_s": round(in_window / window_s, 2) if window_s > 0 and tps else None,
    }
    for q in PERCENTILES:
        out[f"latency_p{q}_ms"] = _pct(latency, q, 1000)
    for q in PERCENTILES:
        out[f"ttft_p{q}_ms"] = _pct(ttft, q, 1000)
    for q in PERCENTILES:
        out[f"itl_p{q}_ms"] = _pct(itl, q, 1000)
    out["tokens_per_s_p5"] = _pct(tps, 5)
    out["tokens_per_s_p50"] = _pct(tps, 50)
    out["tokens_per_s_mean"] = round(float(np.mean(tps)), 3) if tps else None
    out["completion_tokens_mean"] = round(tokens / len(ok), 1) if ok else None
    return out


def window_of(requests: list[dict[str, Any]]) -> tuple[float, float]:
    """From the first request sent to the last answer received."""
    if not requests:
        return 0.0, 0.0
    return min(s["t_start"] for s in requests), max(s["t_start"] + s["latency_s"] for s in requests)


def load_window(requests: list[dict[str, Any]], stop: float | None) -> tuple[float, float]:
    """From the first request sent to the end of the run time (or the last answer, without a stop record)."""
    t0, t1 = window_of(requests)
    return (t0, min(t1, stop)) if stop is not None and stop > t0 else (t0, t1)


def summarize(requests: list[dict[str, Any]], skipped: dict[str, str], meta: dict[str, Any] | None = None,
              locust: dict[str, Any] | None = None, workers: int = 0, stop: float | None = None) -> dict[str, Any]:
    window = load_window(requests, stop)
    endpoints = sorted({s["endpoint"] for s in requests})
    errors: dict[str, int] = {}
    for s in requests:
        if not s["ok"]:
            status = f"HTTP {s['status']} " if s["status"] else ""
            key = f"{s['endpoint']}: {status}{s['error']}"
            errors[key[:200]] = errors.get(key[:200], 0) + 1
    return {
        "meta": meta or {},
        "window_s": round(window[1] - window[0], 2),  # the load window the rates are over
        "drain_s": round(window_of(requests)[1] - window[1], 2),  # in-flight requests finishing after it
        "all": _stats(requests, window),
        "endpoints": {e: _stats([s for s in requests if s["endpoint"] == e], window) for e in endpoints},
        "skipped": skipped,
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:20]),
        "workers": workers,
        "locust": locust or {},
    }


def locust_totals(results: Path) -> dict[str, Any]:
    """Locust's own count of the request rows (a cross-check of the samples) from ``locust_stats.csv``."""
    path = results / "locust_stats.csv"
    if not path.exists():
        return {}
    out: dict[str, Any] = {"requests": 0, "failures": 0, "rows": {}}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["Type"] in ("POST", "GET"):  # one per recorded request; TTFT/ITL/TOK/S are metrics
                out["requests"] += int(row["Request Count"])
                out["failures"] += int(row["Failure Count"])
            if row["Type"] and row["Name"] != "Aggregated":
                out["rows"][f"{row['Type']} {row['Name']}"] = {
                    "count": int(row["Request Count"]), "median": float(row["Median Response Time"] or 0),
                    "p95": float(row["95%"] or 0) if row.get("95%") not in (None, "N/A") else None,
                }
    return out


def users_over_time(results: Path, t0: float) -> tuple[list[float], list[int]]:
    path = results / "locust_stats_history.csv"
    xs: list[float] = []
    ys: list[int] = []
    if not path.exists():
        return xs, ys
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") == "Aggregated":
                xs.append(float(row["Timestamp"]) - t0)
                ys.append(int(row["User Count"]))
    return xs, ys


# -- plots ----------------------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(summary: dict[str, Any], what: str) -> str:
    meta = summary.get("meta", {})
    bits = [what]
    if meta.get("profile"):
        bits.append(f"{meta['profile']}, {meta.get('users', '?')} users")
    if meta.get("hardware"):
        bits.append(meta["hardware"])
    return " — ".join(bits)


def throughput_series(requests: list[dict[str, Any]], t0: float, t1: float, bin_s: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin output tokens/s (each request's tokens spread over :func:`token_span`) and completed
    requests/s."""
    n = math.floor((t1 - t0) / bin_s) + 1  # the last bin strictly contains t1
    tokens = np.zeros(n)
    done = np.zeros(n)
    for s in requests:
        if not s["ok"]:
            continue
        end = s["t_start"] + s["latency_s"]
        done[min(int((end - t0) / bin_s), n - 1)] += 1
        for i in range(n):  # same arithmetic as the summary's output_tokens_per_s
            tokens[i] += tokens_within(s, t0 + i * bin_s, t0 + (i + 1) * bin_s)
    return (np.arange(n) + 0.5) * bin_s, tokens / bin_s, done / bin_s


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    if len(values) < width:
        return values
    return np.convolve(values, np.ones(width) / width, mode="same")


def plot_run(results: Path, requests: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    plt = _plt()
    t0, t1 = window_of(requests)
    made = []
    if not requests:
        return made

    # 1. throughput over time, with the user count
    xs, tok, rps = throughput_series(requests, t0, t1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(xs, _smooth(tok, 5), label="output tokens/s (5 s mean)", color="tab:blue")
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("output tokens/s")
    ax2 = ax.twinx()
    ax2.plot(xs, _smooth(rps, 5), label="requests/s (5 s mean)", color="tab:orange", alpha=0.8)
    ux, uy = users_over_time(results, t0)
    if ux:
        ax2.step(ux, uy, where="post", label="users", color="tab:gray", linestyle="--")
    ax2.set_ylabel("requests/s · users")
    ax.axvline(summary["window_s"], color="tab:red", linestyle=":", label="run time up (drain after)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title(_title(summary, "Throughput over time"), fontsize=9)
    fig.tight_layout()
    made.append(results / "throughput.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)

    # 2. TTFT over time: every streamed request at its send time, with rolling p50/p95
    streamed = sorted((s for s in requests if s["ok"] and s.get("ttft_s") is not None), key=lambda s: s["t_start"])
    if streamed:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for endpoint in sorted({s["endpoint"] for s in streamed}):
            pts = [s for s in streamed if s["endpoint"] == endpoint]
            ax.scatter([s["t_start"] - t0 for s in pts], [s["ttft_s"] * 1000 for s in pts], s=10, alpha=0.5,
                       label=endpoint)
        starts = np.array([s["t_start"] - t0 for s in streamed])
        ttfts = np.array([s["ttft_s"] * 1000 for s in streamed])
        grid = np.linspace(0, max(starts.max(), 1.0), 60)
        for q, style in ((50, "-"), (95, "--")):
            vals = [np.percentile(ttfts[(starts >= g - 10) & (starts <= g + 10)], q)
                    if ((starts >= g - 10) & (starts <= g + 10)).any() else np.nan for g in grid]
            ax.plot(grid, vals, style, color="black", label=f"p{q} (±10 s)")
        ax.axvline(summary["window_s"], color="tab:red", linestyle=":", label="run time up")
        ax.set_xlabel("seconds since the first request (request sent)")
        ax.set_ylabel("time to first token (ms)")
        ax.legend(fontsize=8)
        ax.set_title(_title(summary, "TTFT over time"), fontsize=9)
        fig.tight_layout()
        made.append(results / "ttft.png")
        fig.savefig(made[-1], dpi=110)
        plt.close(fig)

    # 3. latency CDFs: end-to-end per endpoint, TTFT and ITL over streamed requests
    ok = [s for s in requests if s["ok"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for endpoint in sorted({s["endpoint"] for s in ok}):
        vals = np.sort([s["latency_s"] for s in ok if s["endpoint"] == endpoint])
        axes[0].plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=endpoint)
    axes[0].set_xlabel("end-to-end latency (s)")
    for endpoint in sorted({s["endpoint"] for s in streamed}):
        vals = np.sort([s["ttft_s"] * 1000 for s in streamed if s["endpoint"] == endpoint])
        axes[1].plot(vals, np.arange(1, len(vals) + 1) / len(vals), label=endpoint)
        gaps = np.sort([g * 1000 for s in streamed if s["endpoint"] == endpoint for g in s.get("itl_s", ())])
        if len(gaps):
            axes[2].plot(gaps, np.arange(1, len(gaps) + 1) / len(gaps), label=endpoint)
    axes[1].set_xlabel("time to first token (ms)")
    axes[2].set_xlabel("inter-token latency (ms)")
    axes[2].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("fraction of requests" if ax is not axes[2] else "fraction of gaps")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(_title(summary, "Latency CDFs"), fontsize=9)
    fig.tight_layout()
    made.append(results / "latency_cdf.png")
    fig.savefig(made[-1], dpi=110)
    plt.close(fig)
    return made


def plot_sweep(path: Path, levels: list[dict[str, Any]], hardware: str = "") -> Path:
    """Aggregate tokens/s and TTFT p50/p95 against the number of users, one point per run."""
    plt = _plt()
    users = [lv["meta"]["users"] for lv in levels]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(users, [lv["all"]["output_tokens_per_s"] or 0 for lv in levels], "o-", label="aggregate output tokens/s")
    a.plot(users, [lv["all"]["tokens_per_s_p50"] or 0 for lv in levels], "s--", label="per-request tokens/s (p50)")
    a.set_xlabel("users (concurrent requests)")
    a.set_ylabel("tokens/s")
    a.set_xscale("log", base=2)
    a.legend(fontsize=8)
    for q, style in ((50, "o-"), (95, "s--")):
        b.plot(users, [(lv["all"][f"ttft_p{q}_ms"] or 0) / 1000 for lv in levels], style, label=f"TTFT p{q}")
    b.plot(users, [(lv["all"]["latency_p50_ms"] or 0) / 1000 for lv in levels], "^:", label="end-to-end p50")
    b.set_xlabel("users (concurrent requests)")
    b.set_ylabel("seconds")
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.set_xticks(users, [str(u) for u in users])
        ax.grid(alpha=0.3)
    fig.suptitle(f"Load sweep{' — ' + hardware if hardware else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- tables and the verdict ------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def table(summary: dict[str, Any]) -> str:
    """Markdown: one row per endpoint and one for the whole run."""
    head = ("| endpoint | requests | errors | req/s | output tok/s | TTFT p50 / p95 (ms) | ITL p50 / p95 (ms) "
            "| tok/s per request p50 | latency p50 / p95 (s) |\n" + "|---" * 9 + "|\n")
    rows = []
    for name, st in [*summary["endpoints"].items(), ("**all**", summary["all"])]:
        lat50 = st["latency_p50_ms"] / 1000 if st["latency_p50_ms"] is not None else None
        lat95 = st["latency_p95_ms"] / 1000 if st["latency_p95_ms"] is not None else None
        rows.append(
            f"| {name} | {st['requests']} | {st['failures']} | {_fmt(st['requests_per_s'], 2)} "
            f"| {_fmt(st['output_tokens_per_s'], 1)} | {_fmt(st['ttft_p50_ms'])} / {_fmt(st['ttft_p95_ms'])} "
            f"| {_fmt(st['itl_p50_ms'])} / {_fmt(st['itl_p95_ms'])} | {_fmt(st['tokens_per_s_p50'], 1)} "
            f"| {_fmt(lat50, 1)} / {_fmt(lat95, 1)} |"
        )
    return head + "\n".join(rows) + "\n"


def verdict_text(results: list[slo.Result]) -> str:
    lines = []
    for r in results:
        value = "no data" if r.value is None else f"{r.value:g}"
        lines.append(f"  [{'PASS' if r.passed else 'FAIL'}] {r.gate.describe()}: {value}")
    failed = sum(not r.passed for r in results)
    lines.append(f"SLO: {'PASSED' if not failed else f'VIOLATED ({failed} of {len(results)} gates)'}")
    return "\n".join(lines)


def build(results: Path, slo_path: Path | None) -> tuple[dict[str, Any], list[slo.Result]]:
    """Summary (written to summary.json), plots and SLO results of one run directory."""
    meta_path = results / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    requests, skipped, workers, stop = load_samples(results / "samples.jsonl")
    summary = summarize(requests, skipped, meta, locust_totals(results), workers, stop)
    gate_results = slo.evaluate(slo.load(slo_path), summary) if slo_path else []
    summary["slo"] = {
        "file": str(slo_path) if slo_path else None,
        "passed": all(r.passed for r in gate_results),
        "gates": [r.to_json() for r in gate_results],
    }
    summary["plots"] = [p.name for p in plot_run(results, requests, summary)]
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, gate_results


def print_report(summary: dict[str, Any], gate_results: list[slo.Result], results: Path) -> None:
    workers = f", {summary['workers']} workers" if summary["workers"] else ""
    print(f"\nResults in {results}  (window {summary['window_s']} s, {summary['all']['requests']} requests{workers})")
    print(table(summary))
    for endpoint, reason in summary["skipped"].items():
        print(f"skipped {endpoint}: {reason}")
    for error, count in summary["errors"].items():
        print(f"error ×{count}: {error}")
    if gate_results:
        print(verdict_text(gate_results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a run directory (with samples.jsonl)")
    parser.add_argument("--slo", type=Path, default=Path(__file__).resolve().parent / "slo.yaml")
    parser.add_argument("--no-slo", action="store_true", help="report only; exit 0 unless there are no samples")
    args = parser.parse_args(argv)
    try:
        summary, gate_results = build(args.results, None if args.no_slo else args.slo)
    except slo.SLOError as exc:
        print(f"bad SLO file: {exc}", file=sys.stderr)
        return 2
    print_report(summary, gate_results, args.results)
    if not summary["all"]["requests"]:
        print("no requests were recorded", file=sys.stderr)
        return 2
    return 0 if summary["slo"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
