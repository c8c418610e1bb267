"""One chat completion: guard input → RAG (when asked) → inference → guard output.

Every hop is an mTLS gRPC call with a deadline. Streaming responses are Server-Sent Events ending with
``data: [DONE]``; the upstream call is cancelled when the client goes away, which aborts the vLLM request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from flotilla.v1 import guard_pb2, inference_pb2, rag_pb2
from services.gateway.errors import OpenAIError, from_grpc
from services.gateway.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
    ResponseMessage,
    UsageInfo,
    completion_id,
)
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Upstreams

log = logging.getLogger(__name__)

CONTEXT_HEADER = (
    "Answer using the numbered context passages below when they are relevant, and cite them as [n]."
)


@dataclass
class Prepared:
    """What the pre-inference hops produced for one request."""

    request_id: str
    completion_id: str
    generate: inference_pb2.GenerateRequest
    headers: dict[str, str] = field(default_factory=dict)


class ChatPipeline:
    def __init__(self, settings: GatewaySettings, upstreams: Upstreams) -> None:
        self.settings = settings
        self.up = upstreams

    # -- before inference ----------------------------------------------------------------------------

    async def prepare(self, req: ChatCompletionRequest, request_id: str) -> Prepared:
        if (name := req.unsupported_param()) is not None:
            raise OpenAIError(
                400,
                f"The '{name}' parameter is not supported by this deployment yet.",
                param=name,
                code="unsupported_parameter",
            )
        n = req.n or 1
        if n > self.settings.max_n:
            raise OpenAIError(
                400, f"Invalid value for 'n': at most {self.settings.max_n}.", param="n", code="invalid_value"
            )
        if n > 1 and req.temperature == 0:
            raise OpenAIError(
                400,
                "'n' greater than 1 needs a temperature above 0 (greedy sampling gives identical choices).",
                param="n",
                code="invalid_value",
            )
        messages = [(m.role, m.text(), m.name or "") for m in req.messages]
        headers: dict[str, str] = {}

        texts = await self._scan_input(request_id, [text for _, text, _ in messages])
        messages = [(role, text, name) for (role, _, name), text in zip(messages, texts, strict=True)]

        if req.vector_store_ids:
            query = next((text for role, text, _ in reversed(messages) if role == "user"), "")
            chunks = await self._retrieve(request_id, query, req.vector_store_ids)
            headers["x-flotilla-rag-chunks"] = str(len(chunks))
            if chunks:
                context = "\n\n".join(f"[{i}] ({c.source}) {c.text}" for i, c in enumerate(chunks, 1))
                messages.insert(0, ("system", f"{CONTEXT_HEADER}\n\n{context}", ""))

        sampling = inference_pb2.SamplingParams(n=n, stop=req.stop or [])
        if (max_tokens := req.effective_max_tokens) is not None:
            sampling.max_tokens = max_tokens
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(req, name)
            if value is not None:
                setattr(sampling, name, value)
        generate = inference_pb2.GenerateRequest(
            request_id=request_id,
            model=req.model,
            chat=inference_pb2.ChatMessages(
                messages=[inference_pb2.ChatMessage(role=r, content=t, name=nm) for r, t, nm in messages]
            ),
            sampling=sampling,
            tenant_id=self.settings.tenant_id,
        )
        return Prepared(request_id, completion_id(), generate, headers)

    async def _scan_input(self, request_id: str, texts: list[str]) -> list[str]:
        try:
            verdict = await self.up.guard.ScanInput(
                guard_pb2.ScanRequest(request_id=request_id, tenant_id=self.settings.tenant_id, texts=texts),
                timeout=self.settings.guard_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "guard") from None
        if verdict.verdict == guard_pb2.VERDICT_BLOCK:
            kinds = sorted({f.type for f in verdict.findings if f.action == "block"})
            raise OpenAIError(
                400,
                "Your request was rejected by the content policy"
                + (f" ({', '.join(kinds)})." if kinds else "."),
                param="messages",
                code="content_policy_violation",
            )
        if verdict.verdict == guard_pb2.VERDICT_REDACT:
            return list(verdict.redacted_texts)
        return texts

    async def _retrieve(self, request_id: str, query: str, store_ids: list[str]) -> list[rag_pb2.Chunk]:
        try:
            resp = await self.up.rag.Retrieve(
                rag_pb2.RetrieveRequest(
                    request_id=request_id,
                    tenant_id=self.settings.tenant_id,
                    query=query,
                    vector_store_ids=store_ids,
                    k=self.settings.rag_k,
                ),
                timeout=self.settings.rag_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "rag") from None
        return list(resp.chunks)

    async def _scan_output(self, request_id: str, texts: list[str]) -> guard_pb2.ScanResponse:
        try:
            return await self.up.guard.ScanOutput(
                guard_pb2.ScanRequest(request_id=request_id, tenant_id=self.settings.tenant_id, texts=texts),
                timeout=self.settings.guard_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "guard") from None

    def _call(self, prepared: Prepared):
        return self.up.inference.Generate(prepared.generate, timeout=self.settings.inference_timeout_s)

    # -- non-streaming -------------------------------------------------------------------------------

    async def complete(self, req: ChatCompletionRequest, prepared: Prepared) -> ChatCompletionResponse:
        n = req.n or 1
        texts = [[] for _ in range(n)]  # type: list[list[str]]
        finish: list[str | None] = [None] * n
        usage = UsageInfo()
        call = self._call(prepared)
        try:
            async for msg in call:
                if msg.HasField("delta"):
                    d = msg.delta
                    texts[d.index].append(d.text)
                    if d.finish_reason:
                        finish[d.index] = d.finish_reason
                else:
                    usage = _usage(msg.usage)
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "inference") from None
        finally:
            call.cancel()
        contents = ["".join(parts) for parts in texts]
        scan = await self._scan_output(prepared.request_id, contents)
        if scan.verdict == guard_pb2.VERDICT_BLOCK:
            blocked = {f.text_index for f in scan.findings if f.action == "block"}
            for i in blocked:
                contents[i], finish[i] = "", "content_filter"
        elif scan.verdict == guard_pb2.VERDICT_REDACT:
            contents = list(scan.redacted_texts)
        return ChatCompletionResponse(
            id=prepared.completion_id,
            model=req.model,
            choices=[
                ChatCompletionChoice(
                    index=i, message=ResponseMessage(content=contents[i]), finish_reason=finish[i]
                )
                for i in range(n)
            ],
            usage=usage,
        )

    # -- streaming -----------------------------------------------------------------------------------

    async def open_stream(self, req: ChatCompletionRequest, prepared: Prepared) -> AsyncIterator[str]:
        """Start the upstream stream and wait for its first message, so that errors such as an unknown
        model or an over-long prompt become HTTP errors instead of a broken event stream."""
        call = self._call(prepared)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise from_grpc(exc, "inference") from None
        return self._sse(req, prepared, call, first)

    async def _sse(self, req: ChatCompletionRequest, prepared: Prepared, call, first) -> AsyncIterator[str]:
        n = req.n or 1
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        cid = prepared.completion_id
        created = int(time.time())
        texts: list[list[str]] = [[] for _ in range(n)]
        exclude = None if include_usage else {"usage"}

        def chunk(choices: list[ChatCompletionChunkChoice], usage: UsageInfo | None = None) -> str:
            body = ChatCompletionChunk(id=cid, created=created, model=req.model, choices=choices, usage=usage)
            return f"data: {body.model_dump_json(exclude=exclude)}\n\n"

        try:
            for i in range(n):
                yield chunk(
                    [ChatCompletionChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))]
                )
            msg = first
            usage: UsageInfo | None = None
            while msg is not grpc.aio.EOF:
                if msg.HasField("delta"):
                    d = msg.delta
                    if d.text:
                        texts[d.index].append(d.text)
                        yield chunk(
                            [ChatCompletionChunkChoice(index=d.index, delta=DeltaMessage(content=d.text))]
                        )
                    if d.finish_reason:
                        yield chunk(
                            [
                                ChatCompletionChunkChoice(
                                    index=d.index, delta=DeltaMessage(), finish_reason=d.finish_reason
                                )
                            ]
                        )
                else:
                    usage = _usage(msg.usage)
                msg = await call.read()
            scan = await self._scan_output(prepared.request_id, ["".join(t) for t in texts])
            if scan.verdict == guard_pb2.VERDICT_BLOCK:
                yield OpenAIError(
                    400, "The response was stopped by the content policy.", code="content_policy_violation"
                ).sse_event()
            elif include_usage and usage is not None:
                yield chunk([], usage)
        except grpc.aio.AioRpcError as exc:
            yield from_grpc(exc, "inference").sse_event()
        except OpenAIError as exc:
            yield exc.sse_event()
        finally:
            call.cancel()
        yield "data: [DONE]\n\n"


def _usage(u: inference_pb2.Usage) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
    )
