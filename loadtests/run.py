"""Headless load test in one command (``make loadtest``): Locust, then the report, plots and SLO verdict.

    python -m loadtests.run --users 8 --spawn-rate 2 --run-time 2m --profile StreamingChatUser
    python -m loadtests.run --workers 2 …            # distributed: a local master + 2 worker processes
    python -m loadtests.run --external-workers 4 …   # master only; workers connect from elsewhere (k8s)
    python -m loadtests.run --sweep 1,8,32 …          # one run per user count, plus a sweep table and plot

Writes into ``--out`` (default ``loadtests/results/<timestamp>/``): ``locust_stats.csv`` and Locust's other
CSVs, ``report.html`` (Locust's HTML report), ``samples.jsonl`` (every request), ``summary.json``,
``throughput.png``, ``ttft.png``, ``latency_cdf.png`` and ``meta.json``. Exit status: 0 when every gate of
the SLO file passes, 1 when one fails, 2 when the run itself failed (Locust crashed, nothing recorded).

The key comes from ``--api-key``, ``$FLOTILLA_API_KEY``, ``$OPENAI_API_KEY`` or ``$FLOTILLA_HOME/dev-api-key``
(the key ``make run`` prints) and reaches Locust through the environment, never its command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotilla.processes import stop_group
from loadtests import report, slo

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
PROFILES = ("MixedUser", "StreamingChatUser", "ChatUser", "CompletionsUser", "EmbeddingsUser", "RagChatUser")
GRACE_S = 90.0  # beyond run time + stop timeout before the run is declared hung and killed


def seconds(text: str) -> float:
    """Locust's run-time syntax: ``90``, ``90s``, ``2m``, ``1h30m``."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 2m, 1h30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def hardware() -> str:
    """A label for the numbers: what this machine is (the fleet of ``make run`` shares it)."""
    if os.environ.get("FLOTILLA_LOADTEST_HARDWARE"):
        return os.environ["FLOTILLA_LOADTEST_HARDWARE"]
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores{f' ({model})' if model else ''}, {platform.machine()}"


def api_key(given: str) -> str:
    if given:
        return given
    for var in ("FLOTILLA_API_KEY", "OPENAI_API_KEY"):
        if os.environ.get(var):
            return os.environ[var]
    path = Path(os.environ.get("FLOTILLA_HOME", ".flotilla")) / "dev-api-key"
    return path.read_text().strip() if path.exists() else ""


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_version() -> str:
    from importlib.metadata import version

    return version("locust")


def _env(args: argparse.Namespace, out: Path | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    key = api_key(args.api_key)
    if key:
        env["FLOTILLA_API_KEY"] = key
    if out is not None:
        env["FLOTILLA_LOADTEST_SAMPLES"] = str(out / "samples.jsonl")
    for opt, var in (("max_tokens", "MAX_TOKENS"), ("think_time", "THINK_TIME"), ("prompt_kinds", "PROMPT_KINDS"),
                     ("model", "MODEL"), ("vector_store_id", "VECTOR_STORE_ID"), ("embedding_model", "EMBEDDING_MODEL"),
                     ("embedding_batch", "EMBEDDING_BATCH"), ("request_timeout", "REQUEST_TIMEOUT")):
        value = getattr(args, opt)
        if value not in (None, "", 0):
            env[f"FLOTILLA_LOADTEST_{var}"] = str(value)
    return env


def _spawn(cmd: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(cmd, env=env, stdout=out or None, stderr=subprocess.STDOUT if out else None,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if out is not None:
            out.close()


def run_once(args: argparse.Namespace, users: int, out: Path) -> int:
    """One Locust run into ``out``; returns Locust's exit code (0 or 1 are normal runs; 1 = some failures)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "profile": args.profile, "users": users, "spawn_rate": args.spawn_rate, "run_time": args.run_time,
        "workers": args.workers or args.external_workers, "host": args.host, "max_tokens": args.max_tokens or None,
        "think_time": args.think_time, "prompt_kinds": args.prompt_kinds, "hardware": args.hardware,
        "locust": locust_version(), "commit": git_commit(), "label": args.label,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    env = _env(args, out)
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    master = [
        *common, "--headless", "--users", str(users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", args.run_time, "--host", args.host, "--stop-timeout", str(int(args.stop_timeout)),
        "--csv", str(out / "locust"), "--html", str(out / "report.html"), "--only-summary",
        "--loglevel", args.loglevel, *args.locust_args, *args.profile.split(","),
    ]
    workers: list[subprocess.Popen[bytes]] = []
    expect = args.workers or args.external_workers
    port = args.master_port or free_port()
    if expect:
        bind = "127.0.0.1" if args.workers else args.master_bind_host
        master[len(common):len(common)] = [
            "--master", "--expect-workers", str(expect), "--expect-workers-max-wait", "120",
            "--master-bind-host", bind, "--master-bind-port", str(port),
        ]
    budget = seconds(args.run_time) + args.stop_timeout + GRACE_S + (120 if expect else 0)
    proc = _spawn(master, env, None)
    try:
        for i in range(args.workers):
            worker_env = {k: v for k, v in env.items() if k != "FLOTILLA_LOADTEST_SAMPLES"}
            workers.append(_spawn([*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                                   "--loglevel", args.loglevel], worker_env, out / f"worker-{i}.log"))
        try:
            return proc.wait(budget)
        except subprocess.TimeoutExpired:
            print(f"locust did not finish within {budget:.0f}s; stopping it", file=sys.stderr)
            return 124
    finally:
        stop_group(proc, 10.0, term_group=True)
        for w in workers:  # they quit with the master; this only cleans up after a crash
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                pass
            stop_group(w, 10.0, term_group=True)


def evaluate(args: argparse.Namespace, out: Path, locust_rc: int) -> tuple[int, dict[str, Any]]:
    summary, gate_results = report.build(out, None if args.no_slo else args.slo)
    report.print_report(summary, gate_results, out)
    if locust_rc not in (0, 1):
        print(f"locust exited with {locust_rc}", file=sys.stderr)
        return 2, summary
    if not summary["all"]["requests"]:
        print("no requests were recorded", file=sys.stderr)
        return 2, summary
    return (0 if summary["slo"]["passed"] else 1), summary


def sweep_table(levels: list[dict[str, Any]]) -> str:
    head = ("| users | requests | errors | output tok/s | req/s | TTFT p50 / p95 (ms) | ITL p50 / p95 (ms) "
            "| tok/s per request p50 | latency p50 / p95 (s) |\n" + "|---" * 9 + "|\n")
    f = report._fmt
    rows = []
    for lv in levels:
        a = lv["all"]
        rows.append(
            f"| {lv['meta']['users']} | {a['requests']} | {a['failures']} | {f(a['output_tokens_per_s'], 1)} "
            f"| {f(a['requests_per_s'], 2)} | {f(a['ttft_p50_ms'])} / {f(a['ttft_p95_ms'])} "
            f"| {f(a['itl_p50_ms'])} / {f(a['itl_p95_ms'])} | {f(a['tokens_per_s_p50'], 1)} "
            f"| {f((a['latency_p50_ms'] or 0) / 1000, 1)} / {f((a['latency_p95_ms'] or 0) / 1000, 1)} |"
        )
    return head + "\n".join(rows) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=os.environ.get("LOCUST_HOST", "http://127.0.0.1:8000"),
                   help="the gateway's root URL (default: $LOCUST_HOST or http://127.0.0.1:8000)")
    p.add_argument("--api-key", default="", help="default: $FLOTILLA_API_KEY, $OPENAI_API_KEY, the dev key")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--spawn-rate", type=float, default=1.0, help="users started per second")
    p.add_argument("--run-time", default="60s", type=lambda t: (seconds(t), t)[1])
    p.add_argument("--profile", default="MixedUser", help=f"user class(es), comma-separated: {', '.join(PROFILES)}")
    p.add_argument("--workers", type=int, default=0, help="distributed: start a local master and N workers")
    p.add_argument("--external-workers", type=int, default=0,
                   help="distributed: run the master only and wait for N workers started elsewhere")
    p.add_argument("--master-bind-host", default="0.0.0.0")
    p.add_argument("--master-port", type=int, default=0, help="default: 5557 with --external-workers, else free")
    p.add_argument("--sweep", default="", help="comma-separated user counts, one run each (e.g. 1,8,32)")
    p.add_argument("--slo", type=Path, default=HERE / "slo.yaml")
    p.add_argument("--no-slo", action="store_true", help="report only")
    p.add_argument("--out", type=Path, help="results directory (default: <$FLOTILLA_LOADTEST_RESULTS or "
                   "loadtests/results>/<timestamp>)")
    p.add_argument("--max-tokens", type=int, default=0, help="cap the prompts' max_tokens")
    p.add_argument("--think-time", default="0", help="seconds between a user's requests: N or MIN-MAX")
    p.add_argument("--prompt-kinds", default="short,medium,long")
    p.add_argument("--model", default="", help="default: the first model /v1/models lists")
    p.add_argument("--vector-store-id", default="", help="RAG: use this store instead of building one")
    p.add_argument("--embedding-model", default="", help="default: all-MiniLM-L6-v2")
    p.add_argument("--embedding-batch", type=int, default=0, help="texts per embeddings request (default 8)")
    p.add_argument("--request-timeout", type=float, default=0, help="seconds per request (default 300)")
    p.add_argument("--stop-timeout", type=float, default=120.0,
                   help="seconds in-flight requests may finish after the run time (0: cut them off)")
    p.add_argument("--hardware", default=hardware(), help="label for the numbers (default: this machine)")
    p.add_argument("--label", default="", help="free text stored in meta.json")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("locust_args", nargs="*", help="after --: passed to the Locust master unchanged")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.workers and args.external_workers:
        print("--workers and --external-workers exclude each other", file=sys.stderr)
        return 2
    if args.external_workers and not args.master_port:
        args.master_port = 5557
    try:
        if not args.no_slo:
            slo.load(args.slo)  # a broken SLO file fails before the load, not after
    except (slo.SLOError, OSError) as exc:
        print(f"bad SLO file: {exc}", file=sys.stderr)
        return 2
    root = Path(os.environ.get("FLOTILLA_LOADTEST_RESULTS") or HERE / "results")
    out = args.out or root / time.strftime("%Y%m%d-%H%M%S")
    levels = [int(u) for u in args.sweep.split(",") if u.strip()] if args.sweep else [args.users]
    if not api_key(args.api_key):
        print("warning: no API key (--api-key, $FLOTILLA_API_KEY, $OPENAI_API_KEY or the dev key)", file=sys.stderr)
    codes, summaries = [], []
    for users in levels:
        level_out = out / f"users-{users}" if args.sweep else out
        print(f"== {args.profile}: {users} users, spawn rate {args.spawn_rate}/s, {args.run_time} "
              f"against {args.host} -> {level_out}", flush=True)
        rc = run_once(args, users, level_out)
        code, summary = evaluate(args, level_out, rc)
        codes.append(code)
        summaries.append(summary)
    if args.sweep:
        (out / "sweep.json").write_text(json.dumps(
            [{"meta": s["meta"], "all": s["all"], "endpoints": s["endpoints"], "slo": s["slo"]} for s in summaries],
            indent=2) + "\n")
        md = sweep_table(summaries)
        (out / "sweep.md").write_text(f"{args.profile} on {args.hardware}, {args.run_time} per level\n\n{md}")
        report.plot_sweep(out / "sweep.png", summaries, args.hardware)
        print(f"\nSweep ({out}):\n{md}")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
