"""The Inference gRPC servicer over vLLM's ``AsyncLLM``."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from flotilla.grpcerrors import abort
from flotilla.v1 import inference_pb2, inference_pb2_grpc
from services.inference.settings import InferenceSettings

log = logging.getLogger(__name__)


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    """Streams vLLM outputs as deltas; cancelling the RPC aborts the vLLM request."""

    def __init__(self, settings: InferenceSettings, engine: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.tokenizer = engine.get_tokenizer()
        self.max_model_len: int = engine.model_config.max_model_len
        self.created = int(time.time())
        self.draining = False

    # -- helpers -------------------------------------------------------------------------------------

    def _encode(self, request: inference_pb2.GenerateRequest) -> list[int]:
        if request.WhichOneof("input") == "chat":
            messages = [
                {"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
                for m in request.chat.messages
            ]
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(request.prompt))

    def _sampling_params(self, request: inference_pb2.GenerateRequest, max_tokens: int) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        sp = request.sampling
        kwargs: dict[str, Any] = {
            "n": sp.n or 1,
            "max_tokens": max_tokens,
            "output_kind": RequestOutputKind.DELTA,
        }
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            if sp.HasField(name):
                kwargs[name] = getattr(sp, name)
        if sp.stop:
            kwargs["stop"] = list(sp.stop)
        return SamplingParams(**kwargs)

    # -- RPCs ----------------------------------------------------------------------------------------

    async def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.GenerateResponse]:
        if self.draining:
            await abort(context, grpc.StatusCode.UNAVAILABLE, "inference replica is draining")
        if request.model != self.settings.model_name:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"The model `{request.model}` does not exist.",
                "model_not_found",
                "model",
            )
        if request.WhichOneof("input") is None:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "messages or prompt is required", param="messages"
            )
        prompt_ids = await asyncio.to_thread(self._encode, request)
        n_prompt = len(prompt_ids)
        param = "messages" if request.WhichOneof("input") == "chat" else "prompt"
        if request.sampling.HasField("max_tokens"):
            max_tokens = request.sampling.max_tokens
        else:
            max_tokens = self.max_model_len - n_prompt
        if max_tokens < 1 or n_prompt + max_tokens > self.max_model_len:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {n_prompt + max(max_tokens, 0)} tokens ({n_prompt} in the {param}, "
                f"{max(max_tokens, 0)} in the completion). Please reduce the length of the {param} or "
                "completion.",
                "context_length_exceeded",
                param,
            )
        from vllm.exceptions import VLLMClientError

        engine_id = f"{request.request_id or 'req'}-{secrets.token_hex(4)}"
        completion_tokens = 0
        try:
            params = self._sampling_params(request, max_tokens)
            async for output in self.engine.generate({"prompt_token_ids": prompt_ids}, params, engine_id):
                for choice in output.outputs:
                    completion_tokens += len(choice.token_ids)
                    yield inference_pb2.GenerateResponse(
                        delta=inference_pb2.TextDelta(
                            index=choice.index,
                            text=choice.text,
                            finish_reason=choice.finish_reason or "",
                            token_count=len(choice.token_ids),
                        )
                    )
        except (VLLMClientError, ValueError) as exc:  # vLLM's own validation of the request
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        yield inference_pb2.GenerateResponse(
            usage=inference_pb2.Usage(prompt_tokens=n_prompt, completion_tokens=completion_tokens)
        )

    async def ListModels(
        self, request: inference_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        return inference_pb2.ListModelsResponse(
            models=[
                inference_pb2.ModelCard(
                    id=self.settings.model_name,
                    max_model_len=self.max_model_len,
                    created=self.created,
                    owned_by="flotilla",
                    root=self.settings.model,
                )
            ]
        )
