"""tool_choice="auto": vLLM's own tool parsers, with the real SmolLM2 tokenizer, turn model text into
tool calls the way the inference replica does when FLOTILLA_INFERENCE_TOOL_CALL_PARSER is set."""

from __future__ import annotations

import json
import os

import pytest

from services.inference.outputs import AutoToolParser

TOOLS = json.dumps([{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.mark.parametrize(("parser", "text", "content"), [
    ("hermes", 'Sure.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "Sure."),
    ("pythonic", '[get_weather(city="Paris")]', ""),
])
def test_vllm_tool_parsers_extract_calls(tokenizer, parser: str, text: str, content: str) -> None:
    got, calls = AutoToolParser(parser, tokenizer).parse(text, TOOLS, "SmolLM2-135M-Instruct")
    assert got.strip() == content
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert all(c.id for c in calls)


def test_plain_text_is_not_a_tool_call(tokenizer) -> None:
    got, calls = AutoToolParser("hermes", tokenizer).parse("The weather is nice.", TOOLS, "m")
    assert calls == [] and got == "The weather is nice."
