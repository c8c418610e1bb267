"""Generation parameters, tools, completions and replica routing in the gateway, against named fakes."""

from __future__ import annotations

import json

import openai
import pytest

from services.gateway.routing import InferenceRouter, affinity_key
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import FAKE_MODEL, FakeInferenceEngine, fake_upstreams
from tests.unit.fakes import fake_client as client_for

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def test_logit_bias_logprobs_and_penalties_reach_the_engine() -> None:
    engine = FakeInferenceEngine()
    client = client_for(inference=engine)
    resp = await client.chat.completions.create(
        model=FAKE_MODEL, messages=MESSAGES, logit_bias={"42": -100, "7": 5.5}, logprobs=True, top_logprobs=2,
        presence_penalty=0.5, frequency_penalty=-0.25, user="u-1",
    )
    sp = engine.requests[0].sampling
    assert dict(sp.logit_bias) == {42: -100.0, 7: 5.5}
    assert sp.logprobs == 2
    assert (sp.presence_penalty, sp.frequency_penalty) == (0.5, -0.25)
    content = resp.choices[0].logprobs.content
    assert [c.token for c in content] == ["echo:", " hello", " there"]
    assert all(len(c.top_logprobs) == 2 and c.bytes == list(c.token.encode()) for c in content)


async def test_json_schema_response_format_is_a_structured_output_constraint() -> None:
    engine = FakeInferenceEngine(reply='{"answer": 4}')
    client = client_for(inference=engine)
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    resp = await client.chat.completions.create(
        model=FAKE_MODEL, messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    assert json.loads(engine.requests[0].sampling.json_schema) == schema
    assert json.loads(resp.choices[0].message.content) == {"answer": 4}
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, response_format={"type": "json_object"})
    assert engine.requests[1].sampling.json_object


async def test_named_tool_choice_forces_the_function_schema_and_returns_tool_calls() -> None:
    engine = FakeInferenceEngine(reply='{"city": "Paris"}')
    client = client_for(inference=engine)
    resp = await client.chat.completions.create(
        model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert json.loads(engine.requests[0].sampling.json_schema) == WEATHER["function"]["parameters"]
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_") and resp.choices[0].message.content is None

    stream = await client.chat.completions.create(
        model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER], stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    args, names = "", set()
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            args += tc.function.arguments or ""
            names.add(tc.function.name)
    assert json.loads(args) == {"city": "Paris"} and "get_weather" in names


async def test_required_tool_choice_returns_every_call() -> None:
    engine = FakeInferenceEngine(reply='[{"name": "get_weather", "parameters": {"city": "Oslo"}}]')
    client = client_for(inference=engine)
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER],
                                                tool_choice="required")
    schema = json.loads(engine.requests[0].sampling.json_schema)
    assert schema["type"] == "array" and schema["minItems"] == 1
    assert resp.choices[0].finish_reason == "tool_calls"
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo"}


async def test_auto_tools_are_passed_for_the_replica_parser_and_none_hides_them() -> None:
    engine = FakeInferenceEngine()
    client = client_for(inference=engine)
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER])
    spec = engine.requests[0].tools
    assert spec.auto and json.loads(spec.tools_json)[0]["function"]["name"] == "get_weather"
    await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER], tool_choice="none")
    assert not engine.requests[1].tools.tools_json


async def test_completions_single_and_multiple_prompts() -> None:
    engine = FakeInferenceEngine()
    client = client_for(inference=engine)
    resp = await client.completions.create(model=FAKE_MODEL, prompt="once upon", logprobs=1)
    assert resp.object == "text_completion" and resp.choices[0].text == "echo: once upon"
    assert resp.choices[0].logprobs.tokens == ["echo:", " once", " upon"]
    assert resp.choices[0].logprobs.text_offset == [0, 5, 10]
    assert engine.requests[0].sampling.max_tokens == 16  # OpenAI's completions default
    resp = await client.completions.create(model=FAKE_MODEL, prompt=["a b", "c d e"], n=2, temperature=0.7)
    assert [c.index for c in resp.choices] == [0, 1, 2, 3]
    assert [c.text for c in resp.choices] == ["echo: a b", "echo: a b", "echo: c d e", "echo: c d e"]
    assert resp.usage.prompt_tokens == 5 and resp.usage.completion_tokens == 2 * 3 + 2 * 4
    stream = await client.completions.create(model=FAKE_MODEL, prompt="x y", stream=True,
                                             stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: x y"
    assert chunks[-1].usage.total_tokens == 2 + 3


@pytest.mark.parametrize(("extra", "param"), [({"echo": True}, "echo"), ({"suffix": "end"}, "suffix"),
                                               ({"best_of": 3}, "best_of"), ({"prompt": [1, 2]}, "prompt"),
                                               ({"prompt": []}, "prompt")])
async def test_completions_refuses_unsupported_options(extra, param) -> None:
    client = client_for()
    with pytest.raises(openai.BadRequestError) as info:
        await client.completions.create(**{"model": FAKE_MODEL, "prompt": "hi", **extra})
    assert info.value.body["param"] == param


async def test_router_retries_another_replica_before_anything_streamed() -> None:
    dead, alive = FakeInferenceEngine(unavailable=True), FakeInferenceEngine()
    up = fake_upstreams(replicas={"r-dead": dead, "r-alive": alive})
    router: InferenceRouter = up.inference
    await router.refresh()
    client = client_for(replicas={"r-dead": dead, "r-alive": alive})
    for _ in range(4):
        resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
        assert resp.choices[0].message.content == "echo: hello there"
    assert len(alive.requests) == 4
    assert len(dead.requests) <= 1  # tried at most once, then ejected


async def test_router_prefix_affinity_and_least_outstanding() -> None:
    engines = {f"r{i}": FakeInferenceEngine() for i in range(3)}
    router = InferenceRouter.from_stubs(engines, affinity_slack=2)
    await router.refresh()
    key = affinity_key(["You are a pirate.", "hi"])
    first = router.choose(FAKE_MODEL, key)
    assert all(router.choose(FAKE_MODEL, key) is first for _ in range(5))  # same prefix, same replica
    first.outstanding = 3  # now busier than the others by more than the slack
    assert router.choose(FAKE_MODEL, key) is not first
    assert router.choose(FAKE_MODEL, key).outstanding == 0
    first.outstanding = 0
    keys = {router.choose(FAKE_MODEL, affinity_key([f"system prompt {i}"])).name for i in range(40)}
    assert len(keys) == 3  # different prefixes spread over the replicas


async def test_unknown_model_is_404_before_any_replica_is_called() -> None:
    engine = FakeInferenceEngine()
    client = client_for(inference=engine)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="other", messages=MESSAGES)
    assert engine.requests == []


async def test_cache_salt_is_per_tenant_and_can_be_disabled() -> None:
    engine = FakeInferenceEngine()
    await client_for(inference=engine).chat.completions.create(model=FAKE_MODEL, messages=MESSAGES)
    assert len(engine.requests[0].cache_salt) == 32
    await client_for(GatewaySettings(cache_salt_per_tenant=False), inference=engine).chat.completions.create(
        model=FAKE_MODEL, messages=MESSAGES)
    assert engine.requests[1].cache_salt == ""


async def test_auto_tool_calls_parsed_by_the_replica_reach_the_client() -> None:
    from flotilla.v1 import inference_pb2

    call = inference_pb2.ToolCall(id="call_1", name="get_weather", arguments='{"city": "Rome"}')
    engine = FakeInferenceEngine(auto_tool_calls=[call])
    client = client_for(inference=engine)
    resp = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER])
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    stream = await client.chat.completions.create(model=FAKE_MODEL, messages=MESSAGES, tools=[WEATHER], stream=True)
    calls = [tc async for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and json.loads(calls[0].function.arguments) == {"city": "Rome"}
