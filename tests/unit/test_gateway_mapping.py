"""The gateway's OpenAI ↔ gRPC mapping, against named in-process fakes of the upstream services."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from flotilla.v1 import guard_pb2, rag_pb2
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import FAKE_MODEL, FakeGuard, FakeInferenceEngine, FakeRag, fake_access, fake_upstreams

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]


@pytest.fixture
def parts():
    return {"inference": FakeInferenceEngine(), "guard": FakeGuard(), "rag": FakeRag()}


@pytest.fixture
def http(parts):
    settings = GatewaySettings(max_body_bytes=4096)
    access, key = fake_access(settings)
    app = create_app(settings, fake_upstreams(**parts), access)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                             headers={"authorization": f"Bearer {key}"})


@pytest.fixture
def client(http):
    key = http.headers["authorization"].split(" ", 1)[1]
    return openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http, max_retries=0)


async def test_non_stream_response_schema_and_usage(client, parts) -> None:
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, temperature=0.5,
                                                top_p=0.9, max_tokens=50, stop="END", seed=7)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == 4
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 7
    sent = parts["inference"].requests[0]
    assert [m.role for m in sent.chat.messages] == ["system", "user"]
    sp = sent.sampling
    assert (round(sp.temperature, 3), round(sp.top_p, 3), sp.max_tokens, list(sp.stop), sp.seed) == (
        0.5, 0.9, 50, ["END"], 7)
    assert not sp.HasField("presence_penalty")


async def test_max_completion_tokens_wins_and_length_finish(client, parts) -> None:
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, max_tokens=9,
                                                max_completion_tokens=2)
    assert parts["inference"].requests[0].sampling.max_tokens == 2
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content == "echo: hello"


async def test_stream_chunks_concatenate_and_usage_chunk(client, parts) -> None:
    stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert parts["inference"].calls[0].cancelled  # the upstream call is always released


async def test_stream_without_include_usage_has_no_usage_and_ends_with_done(http) -> None:
    r = await http.post("/v1/chat/completions", json={"model": FAKE_MODEL, "messages": MESSAGES, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in r.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        assert "usage" not in json.loads(event)


async def test_n_choices_are_indexed(client) -> None:
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, n=3, temperature=0.8)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert resp.usage.completion_tokens == 9


async def test_unknown_model_is_404_model_not_found(client) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    assert info.value.body["param"] == "model"


async def test_unknown_model_in_stream_is_http_404_not_broken_stream(client) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=MESSAGES, stream=True)


async def test_guard_block_is_400_content_policy_violation(parts, client) -> None:
    parts["guard"].input_verdict = guard_pb2.VERDICT_BLOCK
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert info.value.body["code"] == "content_policy_violation"
    assert info.value.body["type"] == "invalid_request_error"
    assert parts["inference"].requests == []  # nothing reached the model


async def test_guard_redaction_is_what_the_model_sees(parts, client) -> None:
    parts["guard"].input_verdict = guard_pb2.VERDICT_REDACT
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert [m.content for m in parts["inference"].requests[0].chat.messages] == ["[REDACTED]", "[REDACTED]"]


async def test_output_block_gives_content_filter(parts, client) -> None:
    parts["guard"].output_verdict = guard_pb2.VERDICT_BLOCK
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.choices[0].message.content == ""
    assert parts["guard"].outputs == [["echo: hello there"]]


async def test_rag_only_when_asked_and_context_inserted(parts, client) -> None:
    parts["rag"].chunks = [rag_pb2.Chunk(text="Paris is the capital.", score=1.0, source="facts.md")]
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert parts["rag"].requests == []
    raw = await client.chat.completions.with_raw_response.create(
        model=FAKE_MODEL, messages=MESSAGES, extra_body={"vector_store_ids": ["vs_1"]})
    assert raw.headers["x-flotilla-rag-chunks"] == "1"
    assert parts["rag"].requests[0].query == "hello there"
    first = parts["inference"].requests[-1].chat.messages[0]
    assert first.role == "system" and "Source [1] (facts.md):\nParis is the capital." in first.content


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": FAKE_MODEL, "messages": MESSAGES, "temperature": 3}, "temperature"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "top_p": 0}, "top_p"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "n": 0}, "n"),
        ({"model": FAKE_MODEL, "messages": []}, "messages"),
        ({"model": FAKE_MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": MESSAGES}, "model"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "bogus": 1}, "bogus"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "functions": [{"name": "f"}]}, "functions"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "top_logprobs": 2}, "top_logprobs"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "logit_bias": {"abc": 1}}, "logit_bias"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "logit_bias": {"5": 101}}, "logit_bias[5]"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "tool_choice": "required"}, "tool_choice"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "response_format": {"type": "json_schema"}}, "response_format"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "n": 2, "temperature": 0}, "n"),
        ({"model": FAKE_MODEL, "messages": MESSAGES, "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
async def test_bad_input_is_400_with_openai_error_body(http, body, param) -> None:
    r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_malformed_json_and_oversized_body(http) -> None:
    r = await http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    big = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = await http.post("/v1/chat/completions", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


async def test_request_id_echoed_and_unknown_route_is_openai_404(http) -> None:
    r = await http.get("/v1/nothing-here", headers={"x-request-id": "abc-123"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["error"]["message"]


async def test_models_list(client) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == [FAKE_MODEL]
    assert (await client.models.retrieve(FAKE_MODEL)).id == FAKE_MODEL
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


async def test_only_streamed_answers_ask_vllm_for_deltas(client, parts) -> None:
    """A non-streamed answer is asked for whole (vLLM FINAL_ONLY: one message per choice instead of one per
    token); chat and completions alike."""
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert parts["inference"].requests[-1].final_only
    _ = [c async for c in await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, stream=True)]
    assert not parts["inference"].requests[-1].final_only
    await client.completions.create(model=FAKE_MODEL, prompt="hello")
    assert parts["inference"].requests[-1].final_only
    _ = [c async for c in await client.completions.create(model=FAKE_MODEL, prompt="hello", stream=True)]
    assert not parts["inference"].requests[-1].final_only


@pytest.mark.parametrize("text", ["hello", ' "quoted" \\ back', "line\nbreak\ttab", "ünïcödé ✓ 漢字", "\x00\x1f", ""])
def test_streamed_text_events_are_the_json_pydantic_writes(text: str) -> None:
    from services.gateway.protocol import (
        ChatCompletionChunk,
        ChatCompletionChunkChoice,
        DeltaMessage,
        TextEvents,
    )

    def build(i: int, t: str) -> ChatCompletionChunk:
        return ChatCompletionChunk(id="chatcmpl-1", created=1, model="m",
                                   choices=[ChatCompletionChunkChoice(index=i, delta=DeltaMessage(content=t))])

    for exclude in ({"usage"}, None):
        event = TextEvents(build, exclude).event(2, text)
        assert event.startswith("data: ") and event.endswith("\n\n")
        assert json.loads(event[6:]) == json.loads(build(2, text).model_dump_json(exclude=exclude))
