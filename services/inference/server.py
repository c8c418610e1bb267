"""The Inference gRPC servicer over vLLM's ``AsyncLLM``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import trace

from flotilla.grpcerrors import abort
from flotilla.v1 import inference_pb2, inference_pb2_grpc
from services.inference import metrics
from services.inference.outputs import AutoToolParser, token_logprobs
from services.inference.sampling import to_vllm
from services.inference.settings import InferenceSettings

log = logging.getLogger(__name__)


def _genai_request(
    request: inference_pb2.GenerateRequest, max_tokens: int, n_prompt: int, engine_id: str
) -> dict[str, Any]:
    """OpenTelemetry gen_ai attributes of one Generate call (never the prompt)."""
    sp = request.sampling
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat" if request.WhichOneof("input") == "chat" else "text_completion",
        "gen_ai.system": "vllm",
        "gen_ai.request.model": request.model,
        "gen_ai.response.model": request.model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.response.id": engine_id,
        "gen_ai.usage.input_tokens": n_prompt,
        "flotilla.request_id": request.request_id,
    }
    if sp.HasField("temperature"):
        attrs["gen_ai.request.temperature"] = sp.temperature
    if sp.HasField("top_p"):
        attrs["gen_ai.request.top_p"] = sp.top_p
    if sp.n > 1:
        attrs["gen_ai.request.choice.count"] = sp.n
    return attrs


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    """Streams vLLM outputs as deltas; cancelling the RPC aborts the vLLM request."""

    def __init__(self, settings: InferenceSettings, engine: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.tokenizer = engine.get_tokenizer()
        self.max_model_len: int = engine.model_config.max_model_len
        self.model = settings.model_name
        self.created = int(time.time())
        self.draining = False
        self.tool_parser = (
            AutoToolParser(settings.tool_call_parser, self.tokenizer) if settings.tool_call_parser else None
        )

    # -- helpers -------------------------------------------------------------------------------------

    def _encode(self, request: inference_pb2.GenerateRequest) -> list[int]:
        if request.WhichOneof("input") == "chat":
            messages = [
                {"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
                for m in request.chat.messages
            ]
            extra = {"tools": json.loads(request.tools.tools_json)} if request.tools.tools_json else {}
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **extra)
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(request.prompt))

    async def _validate(self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext) -> None:
        if self.draining:
            await abort(context, grpc.StatusCode.UNAVAILABLE, "inference replica is draining")
        if request.model != self.model:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, f"The model `{request.model}` does not exist.", "model_not_found",
                "model",
            )
        if request.WhichOneof("input") is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "messages or prompt is required", param="messages")
        if request.tools.auto and self.tool_parser is None:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT,
                '"auto" tool choice needs a tool parser on the inference replica '
                "(FLOTILLA_INFERENCE_TOOL_CALL_PARSER); name a function in tool_choice or use \"required\".",
                "unsupported_value", "tool_choice",
            )

    # -- RPCs ----------------------------------------------------------------------------------------

    async def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.GenerateResponse]:
        await self._validate(request, context)
        started = time.perf_counter()
        prompt_ids = await asyncio.to_thread(self._encode, request)
        n_prompt = len(prompt_ids)
        param = "messages" if request.WhichOneof("input") == "chat" else "prompt"
        sp = request.sampling
        max_tokens = sp.max_tokens if sp.HasField("max_tokens") else self.max_model_len - n_prompt
        if max_tokens < 1 or n_prompt + max_tokens > self.max_model_len:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT,
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {n_prompt + max(max_tokens, 0)} tokens ({n_prompt} in the {param}, "
                f"{max(max_tokens, 0)} in the completion). Please reduce the length of the {param} or "
                "completion.",
                "context_length_exceeded", param,
            )
        from vllm.exceptions import VLLMClientError

        engine_id = f"{request.request_id or 'req'}-{secrets.token_hex(4)}"
        prompt: dict[str, Any] = {"prompt_token_ids": prompt_ids}
        if request.cache_salt:
            prompt["cache_salt"] = request.cache_salt
        top_n = sp.logprobs if sp.HasField("logprobs") else -1
        buffered: dict[int, list[str]] | None = {} if request.tools.auto else None
        completion_tokens = 0
        first = True
        first_delta = True
        outcome = "error"
        finish_reasons: list[str] = []
        span = trace.get_current_span()  # the Generate server span while tracing is on (non-recording otherwise)
        if span.is_recording():
            span.set_attributes(_genai_request(request, max_tokens, n_prompt, engine_id))
        metrics.IN_FLIGHT.labels(self.model).inc()
        try:
            params = to_vllm(sp, max_tokens, request.final_only)
            # aclosing: when the caller goes away the handler stops at a yield (GeneratorExit) or an await
            # (CancelledError); either way vLLM's generator is closed now, which aborts the request in the engine.
            async with contextlib.aclosing(self.engine.generate(prompt, params, engine_id)) as outputs:
                async for output in outputs:
                    for choice in output.outputs:
                        count = len(choice.token_ids)
                        completion_tokens += count
                        if first and count:
                            metrics.TTFT.labels(self.model).observe(time.perf_counter() - started)
                            first = False
                        if choice.finish_reason:
                            finish_reasons.append(choice.finish_reason)
                        delta = inference_pb2.TextDelta(
                            index=choice.index, text=choice.text, finish_reason=choice.finish_reason or "",
                            token_count=count, prompt_tokens=n_prompt if first_delta else 0,
                        )
                        first_delta = False
                        if top_n >= 0:
                            delta.logprobs.extend(
                                token_logprobs(choice.token_ids, choice.logprobs, top_n, self.tokenizer)
                            )
                        if buffered is not None:  # "auto" tools: the text is parsed once the choice ends
                            buffered.setdefault(choice.index, []).append(choice.text)
                            if not choice.finish_reason:
                                delta.text = ""
                            else:
                                self._attach_tool_calls(delta, "".join(buffered.pop(choice.index)), request)
                        yield inference_pb2.GenerateResponse(delta=delta)
            outcome = "ok"
        except (VLLMClientError, ValueError) as exc:  # vLLM's own validation of the request
            outcome = "invalid"
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (asyncio.CancelledError, GeneratorExit):  # the caller cancelled or went away
            outcome = "cancelled"
            raise
        finally:
            metrics.IN_FLIGHT.labels(self.model).dec()
            metrics.REQUESTS.labels(self.model, outcome).inc()
            metrics.PROMPT_TOKENS.labels(self.model).inc(n_prompt)
            metrics.COMPLETION_TOKENS.labels(self.model).inc(completion_tokens)
            if span.is_recording():
                span.set_attributes({"gen_ai.usage.input_tokens": n_prompt,
                                     "gen_ai.usage.output_tokens": completion_tokens,
                                     "gen_ai.response.finish_reasons": finish_reasons, "flotilla.outcome": outcome})
        yield inference_pb2.GenerateResponse(
            usage=inference_pb2.Usage(prompt_tokens=n_prompt, completion_tokens=completion_tokens)
        )

    def _attach_tool_calls(
        self, delta: inference_pb2.TextDelta, text: str, request: inference_pb2.GenerateRequest
    ) -> None:
        assert self.tool_parser is not None
        content, calls = self.tool_parser.parse(text, request.tools.tools_json, self.model)
        delta.text = content
        if calls:
            delta.tool_calls.extend(calls)
            delta.finish_reason = "tool_calls"

    async def ListModels(
        self, request: inference_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        return inference_pb2.ListModelsResponse(
            models=[
                inference_pb2.ModelCard(
                    id=self.model,
                    max_model_len=self.max_model_len,
                    created=self.created,
                    owned_by="flotilla",
                    root=self.settings.model,
                )
            ]
        )
