"""Shared pieces of the benchmarks: a streaming OpenAI-API load generator and result writing."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results"

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle works to a ten-year-old.",
    "List ten ideas for a rainy afternoon and describe each one.",
    "Describe the water cycle in detail.",
    "Write a poem about autumn leaves falling in a quiet park.",
    "What are the main differences between cats and dogs as pets?",
    "Give step-by-step instructions for baking bread at home.",
    "Tell me about the history of the printing press.",
]


@dataclass
class RequestStats:
    ttft_s: float
    latency_s: float
    completion_tokens: int
    itl_s: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def stream_chat(http: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> RequestStats:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, last, itl, tokens = None, None, [], 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            if event.get("choices") and event["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - start
                elif last is not None:
                    itl.append(now - last)
                last = now
    end = time.perf_counter()
    return RequestStats(ttft_s=ttft or end - start, latency_s=end - start, completion_tokens=tokens, itl_s=itl)


async def run_level(
    base_url: str, model: str, concurrency: int, requests: int, max_tokens: int, api_key: str = ""
) -> dict:
    """``requests`` streaming chats, ``concurrency`` at a time; throughput and latency summary."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    stats: list[RequestStats] = []
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits, headers=headers) as http:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                stats.append(await stream_chat(http, model, PROMPTS[i % len(PROMPTS)], max_tokens))

        await stream_chat(http, model, PROMPTS[0], 4)  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    tokens = sum(s.completion_tokens for s in stats)
    itl = [x for s in stats for x in s.itl_s]
    return {
        "concurrency": concurrency,
        "requests": len(stats),
        "wall_s": wall,
        "requests_per_s": len(stats) / wall,
        "output_tokens_per_s": tokens / wall,
        "completion_tokens": tokens,
        "ttft_p50_ms": percentile([s.ttft_s for s in stats], 0.5) * 1000,
        "ttft_p95_ms": percentile([s.ttft_s for s in stats], 0.95) * 1000,
        "itl_p50_ms": percentile(itl, 0.5) * 1000,
        "latency_p50_s": statistics.median(s.latency_s for s in stats),
    }


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def asdict_list(items: list) -> list[dict]:
    return [asdict(i) for i in items]
