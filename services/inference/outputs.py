"""Turn vLLM outputs into gRPC messages: logprobs and tool calls."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from flotilla.v1 import inference_pb2


def token_logprobs(
    token_ids: Sequence[int], logprobs: Sequence[dict[int, Any]] | None, top_n: int, tokenizer: Any
) -> list[inference_pb2.TokenLogprob]:
    """One entry per generated token: the sampled token's logprob and the ``top_n`` most likely ones."""
    if not logprobs:
        return []
    out = []
    for token_id, candidates in zip(token_ids, logprobs, strict=False):
        chosen = candidates.get(token_id)
        text = _text(token_id, chosen, tokenizer)
        ranked = sorted(candidates.items(), key=lambda kv: kv[1].logprob, reverse=True)[:top_n]
        out.append(
            inference_pb2.TokenLogprob(
                token=text,
                logprob=max(chosen.logprob, -9999.0) if chosen is not None else -9999.0,
                bytes=text.encode("utf-8"),
                top=[
                    inference_pb2.TopLogprob(
                        token=(t := _text(tid, lp, tokenizer)), logprob=max(lp.logprob, -9999.0), bytes=t.encode()
                    )
                    for tid, lp in ranked
                ],
            )
        )
    return out


def _text(token_id: int, lp: Any, tokenizer: Any) -> str:
    if lp is not None and lp.decoded_token is not None:
        return lp.decoded_token
    return tokenizer.decode([token_id])


class AutoToolParser:
    """Parses tool calls out of a finished output with one of vLLM's tool parsers (``hermes``, ...)."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

        self.name = name
        self.tokenizer = tokenizer
        self.parser_cls = ToolParserManager.get_tool_parser(name)

    def parse(self, text: str, tools_json: str, model: str) -> tuple[str, list[inference_pb2.ToolCall]]:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        tools = json.loads(tools_json) if tools_json else []
        request = ChatCompletionRequest(
            model=model, messages=[{"role": "user", "content": ""}], tools=tools, tool_choice="auto"
        )
        parser = self.parser_cls(self.tokenizer, request.tools)
        info = parser.extract_tool_calls(text, request)
        if not info.tools_called:
            return text, []
        calls = [
            inference_pb2.ToolCall(
                id=call.id or f"call_{secrets.token_hex(12)}",
                name=call.function.name,
                arguments=call.function.arguments,
            )
            for call in info.tool_calls
        ]
        return info.content or "", calls
