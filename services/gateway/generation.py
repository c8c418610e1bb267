"""Running prepared ``GenerateRequest``s through the inference router, shared by chat and completions.

One request per prompt; their streams are merged, each choice index shifted by ``offset`` so that
prompt ``p`` with ``n`` choices owns indices ``p*n … p*n+n-1`` (OpenAI's numbering for /v1/completions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc

from flotilla.v1 import inference_pb2
from services.gateway.errors import OpenAIError, from_grpc
from services.gateway.protocol import UsageInfo
from services.gateway.routing import RETRYABLE, InferenceRouter, NoReplicaError, Replica

log = logging.getLogger(__name__)

_LOGIT_BIAS_ERROR = "Invalid 'logit_bias': keys must be token ids (integers as strings)."


def sampling_params(req: Any, n: int, max_tokens: int | None, logprobs: int | None) -> inference_pb2.SamplingParams:
    """The sampling fields chat and completion requests share, validated where OpenAI validates them."""
    sp = inference_pb2.SamplingParams(n=n, stop=req.stop or [])
    if max_tokens is not None:
        sp.max_tokens = max_tokens
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, name)
        if value is not None:
            setattr(sp, name, value)
    if req.logit_bias:
        try:
            bias = {int(k): float(v) for k, v in req.logit_bias.items()}
        except ValueError:
            raise OpenAIError(400, _LOGIT_BIAS_ERROR, param="logit_bias", code="invalid_value") from None
        if any(k < 0 or k >= 2**31 for k in bias):  # token ids are int32 in the contract
            raise OpenAIError(400, _LOGIT_BIAS_ERROR, param="logit_bias", code="invalid_value")
        sp.logit_bias.update(bias)
    if logprobs is not None:
        sp.logprobs = logprobs
    if n > 1 and req.temperature == 0:
        raise OpenAIError(400, "'n' greater than 1 needs a temperature above 0 (greedy sampling gives identical "
                          "choices).", param="n", code="invalid_value")
    return sp


@dataclass
class _Stream:
    call: Any
    first: Any
    replica: Replica
    offset: int
    prompt_tokens: int = 0  # from the first delta
    delivered: int = 0  # completion tokens read so far
    finished: bool = False  # the final usage message arrived


@dataclass
class Generation:
    router: InferenceRouter
    streams: list[_Stream] = field(default_factory=list)
    usage: UsageInfo = field(default_factory=UsageInfo)
    _closed: bool = False

    @classmethod
    async def open(
        cls, router: InferenceRouter, requests: list[inference_pb2.GenerateRequest], timeout: float, key: str,
        verdict: Awaitable[None] | None = None,
    ) -> Generation:
        """Start every request and wait for each first message, so errors (unknown model, prompt too long,
        no replica) surface as HTTP errors before any byte of the response is sent.

        ``verdict``: the rest of the guard's input scan (:meth:`GuardSession.deferred_verdict`), awaited while the
        requests start, so the model reads the prompt meanwhile. When it raises (the prompt is blocked), the
        requests are stopped (vLLM aborts them) and its error is raised: no output is ever released."""
        if verdict is None:
            return await cls._open(router, requests, timeout, key)
        opening = asyncio.ensure_future(cls._open(router, requests, timeout, key))
        try:
            await verdict
        except BaseException:
            opening.cancel()
            with contextlib.suppress(BaseException):
                (await opening).close()
            raise
        return await opening

    @classmethod
    async def _open(
        cls, router: InferenceRouter, requests: list[inference_pb2.GenerateRequest], timeout: float, key: str
    ) -> Generation:
        gen = cls(router)
        n = requests[0].sampling.n or 1

        async def one(i: int, request: inference_pb2.GenerateRequest) -> _Stream:
            call, first, replica = await router.open(request, timeout, key)
            return _Stream(call, first, replica, i * n)

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:  # cancelled (the client left, the guard blocked): stop the streams already open
            for t in tasks:
                t.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            gen.streams = [r for r in done if isinstance(r, _Stream)]
            gen.close()
            raise
        gen.streams = [r for r in results if isinstance(r, _Stream)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            gen.close()
            raise _to_openai(errors[0], requests[0].model)
        return gen

    async def messages(self) -> AsyncIterator[tuple[int, inference_pb2.GenerateResponse]]:
        """(index offset, message) for every message of every stream; usage is summed into ``self.usage``."""
        try:
            if len(self.streams) == 1:
                s = self.streams[0]
                async for msg in self._read(s):
                    yield s.offset, msg
                return
            queue: asyncio.Queue[tuple[int, Any] | BaseException | None] = asyncio.Queue()

            async def pump(s: _Stream) -> None:
                try:
                    async for msg in self._read(s):
                        await queue.put((s.offset, msg))
                except BaseException as exc:  # handed to the consumer
                    await queue.put(exc)
                finally:
                    await queue.put(None)

            tasks = [asyncio.create_task(pump(s)) for s in self.streams]
            try:
                remaining = len(tasks)
                while remaining:
                    item = await queue.get()
                    if item is None:
                        remaining -= 1
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        yield item
            finally:
                for t in tasks:
                    t.cancel()
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "inference") from None

    async def _read(self, s: _Stream) -> AsyncIterator[inference_pb2.GenerateResponse]:
        msg = s.first
        while msg is not grpc.aio.EOF:
            if msg.HasField("usage"):
                s.finished = True
                self.usage.prompt_tokens += msg.usage.prompt_tokens
                self.usage.completion_tokens += msg.usage.completion_tokens
                self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens
            else:
                s.prompt_tokens = s.prompt_tokens or msg.delta.prompt_tokens
                s.delivered += msg.delta.token_count
                yield msg
            try:
                msg = await s.call.read()
            except grpc.aio.AioRpcError as exc:
                raise self._interrupted(s, exc) from None

    def _interrupted(self, s: _Stream, exc: grpc.aio.AioRpcError) -> OpenAIError:
        """A stream failed after it had started: it cannot be retried (the client has part of the answer).
        The replica's circuit breaker hears of it; the client gets an error event, then the end."""
        self.router.failed(s.replica, exc.code())
        if exc.code() in RETRYABLE:
            log.warning("inference stream interrupted", extra={
                "f_replica": s.replica.name, "f_code": exc.code().name, "f_delivered_tokens": s.delivered})
            return OpenAIError(
                503, f"The inference replica failed after {s.delivered} tokens of the answer had been sent; the "
                "answer is incomplete. Retry the request.", code="inference_interrupted", headers={"retry-after": "1"},
            )
        return from_grpc(exc, "inference")

    def billed(self) -> UsageInfo:
        """Usage to bill: vLLM's count for finished streams, the tokens delivered for streams cut short."""
        usage = UsageInfo(prompt_tokens=self.usage.prompt_tokens, completion_tokens=self.usage.completion_tokens)
        for s in self.streams:
            if not s.finished:
                usage.prompt_tokens += s.prompt_tokens
                usage.completion_tokens += s.delivered
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return usage

    def close(self) -> None:
        """Cancel what is still running upstream (aborting the vLLM requests) and release the replicas."""
        if self._closed:
            return
        self._closed = True
        for s in self.streams:
            s.call.cancel()
            self.router.release(s.replica)


def _to_openai(exc: BaseException, model: str) -> BaseException:
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_grpc(exc, "inference")
    if isinstance(exc, NoReplicaError):
        if exc.unknown:
            return OpenAIError(404, f"The model `{model}` does not exist.", param="model", code="model_not_found")
        return OpenAIError(503, f"No inference replica for `{model}` is available; retry shortly.",
                           code="service_unavailable", headers={"retry-after": "1"})
    return exc
