"""``make bench-inference``: the fleet against raw vLLM on the same model, settings and workload.

In one run: vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``) and then the
Flotilla fleet (gateway → guard → inference over mTLS, one replica) — once as deployed, once with the guard
turned off (the gateway and routing alone) — are started on the same model with the same engine settings, one
after the other (they would compete for the same CPU cores otherwise), and
driven with the same streaming workload at each concurrency level. Prints requests/s, output tokens/s,
TTFT p50/p95 and inter-token latency p50 for both, and the fleet/raw ratios. Targets: throughput ratio
≥ 0.97, TTFT added ≤ 5 ms at p50. Writes ``benchmarks/results/inference.json`` and ``inference.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import RESULTS, machine, run_level, write_json
from flotilla.devfleet import DevFleet, FleetConfig
from flotilla.processes import stop_group

MODEL = "SmolLM2-135M-Instruct"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_env() -> dict[str, str]:
    return {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def start_raw_vllm(model_dir: Path, port: int, max_model_len: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", MODEL, "--dtype", "bfloat16", "--enforce-eager",
        "--max-model-len", str(max_model_len), "--host", "127.0.0.1", "--port", str(port),
        "--disable-uvicorn-access-log",
    ]
    out = log.open("wb")
    return subprocess.Popen(cmd, env={**os.environ, **engine_env()}, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"raw vLLM exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, 60.0)


def run_workload(base_url: str, levels: list[int], per_level: int, max_tokens: int, api_key: str = "") -> list[dict]:
    return [asyncio.run(run_level(base_url, MODEL, c, max(per_level, c * 2), max_tokens, api_key)) for c in levels]


def plot(raw: list[dict], fleet: list[dict], bare: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r["concurrency"] for r in raw]
    axes[0].plot(xs, [r["output_tokens_per_s"] for r in raw], "o-", label="raw vLLM")
    axes[0].plot(xs, [r["output_tokens_per_s"] for r in fleet], "s--", label="Flotilla fleet")
    if bare:
        axes[0].plot(xs, [r["output_tokens_per_s"] for r in bare], "^-.", label="fleet, guard off")
        axes[1].plot(xs, [r["ttft_p50_ms"] for r in bare], "^-.", label="fleet, guard off p50")
    axes[0].set(xlabel="concurrent streams", ylabel="output tokens/s", title="Throughput")
    axes[1].plot(xs, [r["ttft_p50_ms"] for r in raw], "o-", label="raw vLLM p50")
    axes[1].plot(xs, [r["ttft_p50_ms"] for r in fleet], "s--", label="fleet p50")
    axes[1].plot(xs, [r["ttft_p95_ms"] for r in raw], "o:", label="raw vLLM p95")
    axes[1].plot(xs, [r["ttft_p95_ms"] for r in fleet], "s:", label="fleet p95")
    axes[1].set(xlabel="concurrent streams", ylabel="ms", title="Time to first token")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"Flotilla vs raw vLLM — {MODEL}, {machine()['cpus']} CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="8,32", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=32, help="requests per level (at least 2x concurrency)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--skip-no-guard", action="store_true",
                        help="skip the second fleet run with the guard turned off (gateway + routing cost alone)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from services.inference.prepare import MODEL_DIR_NAME, prepare_smollm2

    model_dir = prepare_smollm2(REPO / ".flotilla" / "models" / MODEL_DIR_NAME)
    work = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))

    port = free_port()
    print(f"raw vLLM on :{port} ...", flush=True)
    raw_proc = start_raw_vllm(model_dir, port, args.max_model_len, work / "raw-vllm.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", raw_proc)
        raw = run_workload(f"http://127.0.0.1:{port}", levels, args.requests, args.max_tokens)
    finally:
        stop(raw_proc)

    def run_fleet(name: str, guard: bool) -> list[dict]:
        print(f"Flotilla fleet ({name}) ...", flush=True)
        config = FleetConfig(
            home=work / name,
            ports={name: free_port() for name in ("gateway", "inference", "guard", "rag")},
            model_dir=model_dir,
            env={"FLOTILLA_INFERENCE_MAX_MODEL_LEN": str(args.max_model_len),
                 "FLOTILLA_GATEWAY_GUARD_ENABLED": str(guard).lower()},
            metrics_ports={"inference": 0},
        )
        with DevFleet(config) as fleet:
            return run_workload(config.base_url.removesuffix("/v1"), levels, args.requests, args.max_tokens,
                                fleet.api_key)

    fleet = run_fleet("fleet", guard=True)
    bare = run_fleet("fleet-no-guard", guard=False) if not args.skip_no_guard else []

    def ratios(r: dict, f: dict) -> dict:
        return {
            "concurrency": r["concurrency"],
            "throughput_ratio": f["output_tokens_per_s"] / r["output_tokens_per_s"],
            "requests_ratio": f["requests_per_s"] / r["requests_per_s"],
            "ttft_added_p50_ms": f["ttft_p50_ms"] - r["ttft_p50_ms"],
            "ttft_added_p95_ms": f["ttft_p95_ms"] - r["ttft_p95_ms"],
            "itl_ratio_p50": f["itl_p50_ms"] / r["itl_p50_ms"] if r["itl_p50_ms"] else float("nan"),
        }

    rows, rows_bare = [], []
    print(f"\n{'conc':>4} {'':>14} {'req/s':>7} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p95':>9} {'ITL p50':>8}")
    for i, (r, f) in enumerate(zip(raw, fleet, strict=True)):
        runs = [("raw", r), ("fleet", f)] + ([("fleet no guard", bare[i])] if bare else [])
        for name, x in runs:
            print(f"{x['concurrency']:>4} {name:>14} {x['requests_per_s']:>7.2f} {x['output_tokens_per_s']:>8.1f} "
                  f"{x['ttft_p50_ms']:>7.1f}ms {x['ttft_p95_ms']:>7.1f}ms {x['itl_p50_ms']:>6.1f}ms")
        for label, run, out in (("fleet/raw", f, rows), ("no-guard/raw", bare[i] if bare else None, rows_bare)):
            if run is None:
                continue
            ratio = ratios(r, run)
            out.append(ratio)
            print(f"{'':>4} {label:>14} throughput {ratio['throughput_ratio']:.3f} (target >= 0.97), "
                  f"TTFT added p50 {ratio['ttft_added_p50_ms']:+.1f} ms (target <= 5 ms)")
    payload = {
        "machine": machine(), "model": MODEL, "max_tokens": args.max_tokens, "levels": levels,
        "raw_vllm": raw, "fleet": fleet, "fleet_no_guard": bare, "ratios": rows, "ratios_no_guard": rows_bare,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"\nwrote {write_json('inference', payload)}")
    plot(raw, fleet, bare, RESULTS / "inference.png")
    print(f"wrote {RESULTS / 'inference.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
