"""Tool calling and response formats, mapped onto vLLM's structured outputs.

* a named function in ``tool_choice`` → the output is constrained to that function's parameter schema;
* ``"required"`` → constrained to a non-empty JSON array of ``{"name", "parameters"}`` calls;
* ``"auto"`` (the default when ``tools`` are given) → free text, parsed by the replica's vLLM tool parser;
* ``"none"`` → the tools are not shown to the model.
Forced calls therefore work with any model, whether or not it was trained for tool use.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Literal

from flotilla.v1 import inference_pb2
from services.gateway.errors import OpenAIError
from services.gateway.protocol import ChatCompletionRequest, FunctionCall, NamedToolChoice, ToolCallOut

Mode = Literal["none", "auto", "named", "required"]
_EMPTY_OBJECT = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    mode: Mode
    function: str | None = None  # the named function


def call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def plan(req: ChatCompletionRequest, sampling: inference_pb2.SamplingParams) -> tuple[ToolPlan, inference_pb2.ToolSpec]:
    """Decide the tool mode, set structured-output constraints on ``sampling`` and build the ToolSpec."""
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        sampling.json_object = True
    elif fmt is not None and fmt.type == "json_schema":
        assert fmt.json_schema is not None and fmt.json_schema.schema_ is not None
        sampling.json_schema = json.dumps(fmt.json_schema.schema_)

    if not req.tools or req.tool_choice == "none":
        return ToolPlan("none"), inference_pb2.ToolSpec()
    tools_json = json.dumps([t.model_dump(exclude_none=True) for t in req.tools])
    choice = req.tool_choice or "auto"
    if choice == "auto":
        return ToolPlan("auto"), inference_pb2.ToolSpec(tools_json=tools_json, auto=True)
    if fmt is not None and fmt.type != "text":
        raise OpenAIError(400, "A forced 'tool_choice' cannot be combined with a JSON 'response_format'.",
                          param="response_format", code="invalid_value")
    if isinstance(choice, NamedToolChoice):
        fn = next(t.function for t in req.tools if t.function.name == choice.function.name)
        sampling.json_schema = json.dumps(fn.parameters or _EMPTY_OBJECT)
        return ToolPlan("named", fn.name), inference_pb2.ToolSpec(tools_json=tools_json)
    variants = [
        {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [t.function.name]},
                           "parameters": t.function.parameters or _EMPTY_OBJECT},
            "required": ["name", "parameters"],
        }
        for t in req.tools
    ]
    sampling.json_schema = json.dumps({"type": "array", "minItems": 1, "items": {"anyOf": variants}})
    return ToolPlan("required"), inference_pb2.ToolSpec(tools_json=tools_json)


def forced_calls(tool_plan: ToolPlan, text: str) -> list[ToolCallOut]:
    """The tool calls a constrained output encodes (named: the arguments; required: a list of calls)."""
    if tool_plan.mode == "named":
        assert tool_plan.function is not None
        return [ToolCallOut(id=call_id(), function=FunctionCall(name=tool_plan.function, arguments=text))]
    try:
        calls = json.loads(text)
    except json.JSONDecodeError:  # cut short by max_tokens: nothing parseable to return
        return []
    return [
        ToolCallOut(id=call_id(), function=FunctionCall(name=c["name"], arguments=json.dumps(c["parameters"])))
        for c in calls
        if isinstance(c, dict) and "name" in c and "parameters" in c
    ]


def from_proto(calls: list[inference_pb2.ToolCall]) -> list[ToolCallOut]:
    return [ToolCallOut(id=c.id or call_id(), function=FunctionCall(name=c.name, arguments=c.arguments)) for c in calls]
