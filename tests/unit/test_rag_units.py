"""RAG pieces without services: extraction, chunking, attribute filters, citation markers, and the gateway's
/v1/responses and chat citation mapping against the named fakes of tests/unit/fakes.py."""

from __future__ import annotations

import itertools
import json

import httpx
import numpy as np
import openai
import pytest

from flotilla.embeddings import MiniLM
from flotilla.v1 import rag_pb2
from services.gateway.app import create_app
from services.gateway.citations import MarkerStream, attribute, cite, content_words, strip_markers
from services.gateway.settings import GatewaySettings
from services.rag import chunking, filters
from services.rag.extract import UnsupportedFile, extract, html_to_text
from tests.integration.test_rag_api import make_pdf
from tests.unit.fakes import FAKE_MODEL, FakeGuard, FakeInferenceEngine, FakeRag, fake_access, fake_upstreams

# -- extraction -----------------------------------------------------------------------------------------


def test_extraction_by_type() -> None:
    assert extract("notes.md", b"# Title\r\n\r\n\r\n\r\nBody") == ("markdown", "# Title\n\nBody")
    fmt, text = extract("page.htm", b"<html><head><title>T</title><style>p{}</style></head><body><p>A &amp; B</p>"
                        b"<script>alert(1)</script><p>C</p></body></html>")
    assert fmt == "html" and text == "T\n\nA & B\n\nC"
    assert extract("r.pdf", make_pdf("Hello from a PDF"))[1] == "Hello from a PDF"
    assert extract("data", b"plain words", content_type="text/plain") == ("text", "plain words")
    assert extract("bom.txt", "\ufeffcafé".encode())[1] == "café"


@pytest.mark.parametrize(("name", "content"), [
    ("image.png", b"\x89PNG"), ("sheet.xlsx", b"PK\x03\x04"), ("x.txt", b"a\x00b"), ("empty.md", b"  "),
    ("bad.pdf", b"%PDF-1.7 nothing here"),
])
def test_unsupported_files_are_refused(name: str, content: bytes) -> None:
    with pytest.raises(UnsupportedFile):
        extract(name, content)


def test_html_keeps_text_of_nested_blocks() -> None:
    assert html_to_text("<ul><li>one</li><li>two <b>bold</b></li></ul>") == "one\n\ntwo bold"


# -- chunking -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return MiniLM().tokenizer


def test_chunks_overlap_and_spans_are_exact(tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunking.chunk_text(text, tokenizer, 100, 40)
    total = len(tokenizer.encode(text, add_special_tokens=False).ids)
    assert all(c.tokens <= 100 for c in chunks) and chunks[-1].end == len(text) and chunks[0].start == 0
    assert all(text[c.start:c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len(chunks) == 1 + -(-(total - 100) // 60)  # a window every 60 tokens until the end is covered
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # consecutive windows share their overlap
    assert chunking.chunk_text("short text", tokenizer, 800, 400)[0].text == "short text"
    assert chunking.chunk_text("", tokenizer, 800, 400) == []


def test_chunking_limits_follow_openai() -> None:
    chunking.validate(800, 400)
    for bad in ((99, 0), (4097, 0), (800, 401), (800, -1)):
        with pytest.raises(ValueError):
            chunking.validate(*bad)


# -- attribute filters ----------------------------------------------------------------------------------


def test_filters_compile_to_bound_parameters() -> None:
    params: list[object] = ["tenant"]
    sql = filters.compile_filter({"type": "and", "filters": [
        {"type": "eq", "key": "kind", "value": "a'; DROP TABLE x; --"},
        {"type": "or", "filters": [{"type": "gte", "key": "year", "value": 2020}, {"type": "in", "key": "tag",
                                                                                  "value": ["x", 1]}]},
    ]}, "attributes", params)
    assert "DROP" not in sql and sql.count(" AND ") >= 2 and " OR " in sql
    assert params[1:] == ["kind", json.dumps("a'; DROP TABLE x; --"), "year", "2020", "tag", ['"x"', "1"]]
    assert "$2" in sql and "$7" in sql and "$8" not in sql


@pytest.mark.parametrize("spec", [
    {"type": "eq", "value": 1}, {"type": "like", "key": "k", "value": 1}, {"type": "and", "filters": []},
    {"type": "eq", "key": "k", "value": {"nested": 1}}, "eq", {"type": "in", "key": "k", "value": "x"},
])
def test_bad_filters_are_refused(spec) -> None:
    with pytest.raises(filters.FilterError):
        filters.compile_filter(spec, "attributes", [])


# -- citation markers -----------------------------------------------------------------------------------


def test_markers_become_positions_in_the_clean_text() -> None:
    text, markers = strip_markers("Built in 1867 [1]. Bread [2, 3] and [9] stays.", passages=3)
    assert text == "Built in 1867. Bread and [9] stays."
    assert [(m.index, m.passages) for m in markers] == [(13, (1,)), (20, (2, 3))]
    assert text[:13] == "Built in 1867"


def test_marker_stream_never_shows_half_a_marker() -> None:
    stream = MarkerStream(passages=2)
    pieces = ["Built in", " 1867", " [", "1", "]", ". Also", " [x] and [", "2]"]
    sent, found = [], []
    for p in pieces:
        clean, markers = stream.feed(p)
        assert "[1" not in clean and "[2" not in clean
        sent.append(clean)
        found.extend(markers)
    clean, markers = stream.feed("", final=True)
    sent.append(clean)
    found.extend(markers)
    full = "".join(sent)
    assert full == "Built in 1867. Also [x] and"
    assert [(m.index, m.passages) for m in found] == [(13, (1,)), (27, (2,))]


# -- attribution of answer sentences ----------------------------------------------------------------------

DOCS = [
    "The Korvath lighthouse stands on the granite cliffs of Emberhold. It was built in 1867 by Ada Morrow.",
    "The Marlow bakery opens every day at six in the morning. The head baker is Tomas Verell.",
    "The Orbis botanical garden was founded in 1889. The garden is closed on Mondays.",
]


def test_content_words_drop_stopwords_placeholders_and_plurals() -> None:
    assert content_words("The [PERSON_1] garden is closed on Mondays, 4,000 plants.") == {
        "garden", "closed", "monday", "4,000", "plant"}


def test_attribution_cites_the_chunk_holding_the_answers_new_facts() -> None:
    answer = "The Korvath lighthouse was built in 1867. The garden closes on Mondays!"
    found = attribute(answer, DOCS, "When was the Korvath lighthouse built?")
    assert [(a.passage, a.index) for a in found] == [(1, answer.index(".")), (3, len(answer) - 1)]
    assert all(a.support >= 0.5 for a in found)
    # Words of the question are not evidence: a sentence that only restates it cites nothing.
    assert attribute("The Korvath lighthouse was built.", DOCS, "When was the Korvath lighthouse built?") == []


def test_attribution_cites_nothing_for_made_up_answers() -> None:
    question = "At what time does the Marlow bakery open?"
    assert attribute("The Marlow bakery opens at 10:00 AM on Saturdays.", DOCS, question) == []
    assert [a.passage for a in attribute("It opens at six in the morning.", DOCS, question)] == [2]
    # Below the threshold: only one of four new words is in a chunk.
    assert attribute("Verell sings opera loudly.", DOCS, "Who?", min_support=0.5) == []
    assert [a.passage for a in attribute("Verell sings opera loudly.", DOCS, "Who?", min_support=0.2)] == [2]


def test_model_markers_take_precedence_over_attribution() -> None:
    chunks = [rag_pb2.Chunk(text=t) for t in DOCS]
    marked = cite("It was built in 1867 [3].", chunks, "When?")
    assert [(c.passage, c.index, c.by) for c in marked] == [(3, 20, "model")]  # as written, even if wrong
    assert [(c.passage, c.by) for c in cite("It was built in 1867.", chunks, "When?")] == [(1, "attribution")]
    assert cite("It was built in 1867.", chunks, "When?", attribution=False) == []
    assert [c.index for c in cite("Built in 1867 [1] indeed.", chunks, "When?", clean=True)] == [13]


# -- the gateway's mapping (named fakes) ----------------------------------------------------------------

CHUNKS = [
    rag_pb2.Chunk(text="The lighthouse was built in 1867.", score=1.0, source="light.md", file_id="file-1",
                  vector_store_id="vs_1", chunk_index=0, start_char=0, end_char=33, attributes_json='{"k": 1}'),
    rag_pb2.Chunk(text="Bread is baked at six.", score=0.5, source="bakery.md", file_id="file-2",
                  vector_store_id="vs_1", chunk_index=3, start_char=10, end_char=32),
]


@pytest.fixture
def parts():
    return {"inference": FakeInferenceEngine(), "guard": FakeGuard(), "rag": FakeRag(chunks=list(CHUNKS))}


@pytest.fixture
def client(parts):
    settings = GatewaySettings()
    access, key = fake_access(settings)
    app = create_app(settings, fake_upstreams(**parts), access)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http, max_retries=0)


async def test_chat_returns_the_context_and_the_chunks_the_answer_cites(client, parts) -> None:
    parts["inference"].reply = "It was built in 1867."
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "when?"}],
                                                extra_body={"vector_store_ids": ["vs_1"]})
    context = resp.model_extra["search_results"]
    assert [(c["index"], c["file_id"], c["start_char"], c["end_char"]) for c in context] == [
        (1, "file-1", 0, 33), (2, "file-2", 10, 32)]
    [cited] = resp.model_extra["citations"]  # only the chunk that supports the answer, not the whole context
    assert (cited["index"], cited["file_id"], cited["filename"], cited["cited_by"]) == (1, "file-1", "light.md",
                                                                                      "attribution")
    assert cited["positions"] == [20] and cited["support"] == 1.0 and cited["text"] == CHUNKS[0].text
    sent = parts["inference"].requests[-1].chat.messages
    assert sent[0].role == "system" and "Source [1] (light.md):\nThe lighthouse" in sent[0].content
    assert "in brackets" in sent[0].content and sent[1].content == "when?"  # the caller's message as it was

    parts["inference"].reply = "Bread at six [2]. Built in 1867 [1]."  # the model's own markers win
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "when?"}],
                                                extra_body={"vector_store_ids": ["vs_1"]})
    content = resp.choices[0].message.content
    assert content == "Bread at six [2]. Built in 1867 [1]."  # chat keeps the text as written
    assert [(c["index"], c["cited_by"], c["positions"]) for c in resp.model_extra["citations"]] == [
        (1, "model", [content.index(" [1]")]), (2, "model", [content.index(" [2]")])]

    parts["inference"].reply = "It opened in 1999 on Mars."  # supported by no chunk: cites nothing
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "when?"}],
                                                extra_body={"vector_store_ids": ["vs_1"]})
    assert resp.model_extra["citations"] == [] and len(resp.model_extra["search_results"]) == 2

    plain = await client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "citations" not in (plain.model_extra or {}) and "search_results" not in (plain.model_extra or {})
    assert len(parts["inference"].requests[-1].chat.messages) == 1  # no context message without retrieval


async def test_streamed_chat_carries_context_first_and_citations_at_the_end(client, parts) -> None:
    parts["inference"].reply = "Bread is baked at six. Nothing else."
    stream = await client.chat.completions.create(
        model=FAKE_MODEL, messages=[{"role": "user", "content": "when is bread baked?"}], stream=True,
        extra_body={"vector_store_ids": ["vs_1"]})
    chunks = [c async for c in stream]
    assert [r["file_id"] for r in chunks[0].model_extra["search_results"]] == ["file-1", "file-2"]
    assert all("search_results" not in (c.model_extra or {}) for c in chunks[1:])
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [cited] = last.model_extra["citations"]
    assert (cited["file_id"], cited["cited_by"], cited["positions"]) == ("file-2", "attribution", [text.index(".")])


async def test_responses_file_search_maps_markers_to_file_citations(client, parts) -> None:
    parts["inference"].reply = "It was built in 1867 [1]. Bread at six [2]."
    resp = await client.responses.create(
        model=FAKE_MODEL, input="When was it built?", instructions="Be brief.",
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 7,
                "filters": {"type": "eq", "key": "k", "value": 1}, "ranking_options": {"score_threshold": 0.2}}],
        include=["file_search_call.results"],
    )
    sent = parts["rag"].requests[-1]
    assert (sent.k, sent.check_stores, json.loads(sent.filters_json)["key"]) == (7, True, "k")
    assert sent.score_threshold == pytest.approx(0.2) and sent.tenant_id == "tenant-unit"
    assert sent.query == "When was it built?"
    search, message = resp.output
    assert search.type == "file_search_call" and [r.file_id for r in search.results] == ["file-1", "file-2"]
    assert search.results[0].attributes == {"k": 1}
    assert resp.output_text == "It was built in 1867. Bread at six."
    notes = message.content[0].annotations
    assert [(a.type, a.file_id, a.index) for a in notes] == [("file_citation", "file-1", 20),
                                                             ("file_citation", "file-2", 34)]
    generated = parts["inference"].requests[-1].chat.messages
    assert generated[0].role == "system" and "Source [1] (light.md)" in generated[0].content
    assert generated[1].content == "Be brief."


async def test_responses_without_markers_cite_the_supporting_chunk(client, parts) -> None:
    parts["inference"].reply = "It was built in 1867. I like it."
    resp = await client.responses.create(model=FAKE_MODEL, input="When?",
                                         tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    notes = resp.output[1].content[0].annotations
    assert [(a.file_id, a.filename, a.index) for a in notes] == [("file-1", "light.md", 20)]
    assert resp.output[0].results is None  # not asked for with include
    parts["inference"].reply = "Eighteen sixty-seven."
    resp = await client.responses.create(model=FAKE_MODEL, input="When?", max_output_tokens=1,
                                         tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.output[1].content[0].annotations == []  # "Eighteen" is in no chunk: no citation
    parts["inference"].reply = "Bread at six."
    stream = await client.responses.create(model=FAKE_MODEL, input="When?", stream=True,
                                           tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    events = [e async for e in stream]
    added = [e.annotation for e in events if e.type == "response.output_text.annotation.added"]
    assert [(a.file_id, a.index) for a in added] == [("file-2", 12)]
    assert events[-1].response.output[1].content[0].annotations[0].file_id == "file-2"


async def test_responses_stream_carries_openai_events(client, parts) -> None:
    parts["inference"].reply = "Built in 1867 [1] indeed."
    stream = await client.responses.create(model=FAKE_MODEL, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "When?"}]}], stream=True,
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.index("response.file_search_call.completed") < kinds.index("response.output_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Built in 1867 indeed." == events[-1].response.output_text
    added = [e.annotation for e in events if e.type == "response.output_text.annotation.added"]
    assert [(a.file_id, a.index) for a in added] == [("file-1", 13)]
    assert events[-1].response.usage.output_tokens > 0


async def test_responses_without_tools_and_refusals(client, parts) -> None:
    resp = await client.responses.create(model=FAKE_MODEL, input="hello")
    assert [o.type for o in resp.output] == ["message"] and resp.output_text == "echo: hello"
    assert parts["rag"].requests == []
    for kwargs, param in (
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"input": [{"type": "function_call_output", "call_id": "x", "output": "y"}]}, "input[0]"),
    ):
        args = {"model": FAKE_MODEL, "input": "hello", **kwargs}
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(**args)
        assert info.value.body["param"] == param
    none = await client.responses.create(model=FAKE_MODEL, input="hello", tool_choice="none",
                                         tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert [o.type for o in none.output] == ["message"] and parts["rag"].requests == []


async def test_rag_routes_need_an_api_key(parts) -> None:
    settings = GatewaySettings()
    access, _ = fake_access(settings)
    app = create_app(settings, fake_upstreams(**parts), access)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        for method, path in (("GET", "/v1/files"), ("GET", "/v1/vector_stores"), ("POST", "/v1/embeddings")):
            resp = await http.request(method, path, json={"model": "m", "input": "x"} if method == "POST" else None)
            assert resp.status_code == 401, path


def test_max_windows_truncates_like_sentence_transformers() -> None:
    """max_windows=1 embeds only a long text's first 256-token window; the default averages every window."""
    full, first = MiniLM(), MiniLM(max_windows=1)
    text = " ".join(f"topic{i % 50} word{i}" for i in range(600))
    ids = full.token_ids([text])[0]
    windows = full.windows(ids)
    assert len(windows) > 1
    assert np.allclose(first.embed([text])[0], full.run(windows[:1])[0], atol=1e-5)
    assert not np.allclose(full.embed([text])[0], first.embed([text])[0], atol=1e-3)
    short = "a short sentence"
    assert np.allclose(first.embed([short]), full.embed([short]), atol=1e-5)


async def test_responses_max_output_tokens_out_of_range_is_a_400(client) -> None:
    """Past chat's max_tokens bound (2**32 - 1) it is the caller's error, not a 500 when the chat request is built."""
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=FAKE_MODEL, input="hi", max_output_tokens=2**32)
    assert info.value.status_code == 400 and "max_output_tokens" in str(info.value.body)
