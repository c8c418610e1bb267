"""Two real inference replicas behind the gateway: prefix affinity, spreading, cancellation, drain.

Runs after the other end-to-end modules: the last test drains (stops) one replica.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import openai
import pytest

from flotilla.devfleet import DevFleet
from tests.conftest import MODEL_NAME, scrape, scrape_labeled

pytestmark = pytest.mark.fleet
REPLICAS = ("inference", "inference-1")


def requests_per_replica(fleet: DevFleet) -> dict[str, float]:
    return {
        name: scrape_labeled(fleet.config.metrics_ports[name], "flotilla_inference_requests_total")
        for name in REPLICAS
    }


def running(fleet: DevFleet, name: str) -> float:
    return scrape(fleet.config.metrics_ports[name]).get("vllm:num_requests_running", 0.0)


@pytest.fixture
def client(fleet: DevFleet) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fleet.config.base_url, api_key=fleet.api_key, max_retries=0)


async def test_models_and_metrics_of_both_replicas(client, fleet: DevFleet) -> None:
    assert [m.id for m in (await client.models.list()).data] == [MODEL_NAME]
    for name in REPLICAS:
        metrics = scrape(fleet.config.metrics_ports[name])
        assert "vllm:num_requests_waiting" in metrics and "vllm:kv_cache_usage_perc" in metrics


async def test_same_prefix_sticks_to_one_replica(client, fleet: DevFleet) -> None:
    before = requests_per_replica(fleet)
    system = {"role": "system", "content": "You answer questions about geography in one short line."}
    for q in ("Where is Peru?", "What is the longest river?", "Name a desert.", "How high is Everest?"):
        await client.chat.completions.create(model=MODEL_NAME, messages=[system, {"role": "user", "content": q}],
                                             max_tokens=4)
    after = requests_per_replica(fleet)
    deltas = sorted(after[n] - before[n] for n in REPLICAS)
    assert deltas == [0, 4]


async def test_different_prefixes_spread_over_replicas(client, fleet: DevFleet) -> None:
    before = requests_per_replica(fleet)
    await asyncio.gather(*(
        client.chat.completions.create(
            model=MODEL_NAME, max_tokens=4,
            messages=[{"role": "user", "content": f"Tell me one fact about the number {i}."}],
        )
        for i in range(12)
    ))
    after = requests_per_replica(fleet)
    assert all(after[n] - before[n] >= 1 for n in REPLICAS), (before, after)


async def test_client_disconnect_aborts_the_vllm_request(fleet: DevFleet) -> None:
    body = {"model": MODEL_NAME, "stream": True, "max_tokens": 400, "temperature": 0.8,
            "messages": [{"role": "user", "content": "Write a very long story about the sea."}]}
    cancelled_before = sum(
        scrape_labeled(fleet.config.metrics_ports[n], "flotilla_inference_requests_total", outcome="cancelled")
        for n in REPLICAS
    )
    auth = {"authorization": f"Bearer {fleet.api_key}"}
    async with httpx.AsyncClient(base_url=fleet.config.base_url, timeout=60, headers=auth) as http:
        async with http.stream("POST", "/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            lines = 0
            async for line in resp.aiter_lines():
                lines += line.startswith("data: ")
                if lines >= 5:
                    break
            assert sum(running(fleet, n) for n in REPLICAS) >= 1
        # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 15
    while sum(running(fleet, n) for n in REPLICAS) > 0:
        assert time.monotonic() < deadline, "the vLLM request kept running after the client left"
        await asyncio.sleep(0.2)
    cancelled_after = sum(
        scrape_labeled(fleet.config.metrics_ports[n], "flotilla_inference_requests_total", outcome="cancelled")
        for n in REPLICAS
    )
    assert cancelled_after == cancelled_before + 1


async def test_sigterm_drains_in_flight_stream_then_traffic_moves(client, fleet: DevFleet) -> None:
    """Last: stops one replica. The stream in flight on it completes; new requests go to the other."""
    stream = await client.chat.completions.create(
        model=MODEL_NAME, stream=True, max_tokens=80, temperature=0, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count from 1 to 300, separated by commas."}],
    )
    chunks = []
    it = stream.__aiter__()
    chunks.append(await it.__anext__())
    busy = [  # the gateway's Generate call in flight on exactly one replica
        n for n in REPLICAS
        if scrape(fleet.config.metrics_ports[n]).get("flotilla_inference_in_flight_requests", 0) >= 1
    ]
    assert len(busy) == 1
    victim = fleet.procs[busy[0]]
    victim.send_signal(signal.SIGTERM)
    async for chunk in it:
        chunks.append(chunk)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])  # completed normally, not cut
    assert chunks[-1].usage.completion_tokens > 0
    assert await asyncio.to_thread(victim.wait, 60) == 0
    for _ in range(3):  # the gateway routes around the stopped replica
        resp = await client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=3)
        assert resp.choices[0].message.content is not None
