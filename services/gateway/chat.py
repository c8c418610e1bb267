"""One chat completion: guard input → RAG (when asked) → inference → guard output.

Every hop is an mTLS gRPC call with a deadline. Streaming responses are Server-Sent Events ending with
``data: [DONE]``; the upstream calls are cancelled when the client goes away, which aborts the vLLM request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from flotilla.guardpolicy import restore
from flotilla.v1 import guard_pb2, inference_pb2, rag_pb2
from services.gateway import citations, deadlines, degraded, metrics, tools
from services.gateway.access import Accounting
from services.gateway.errors import OpenAIError, from_grpc
from services.gateway.generation import Generation, sampling_params
from services.gateway.guard_client import GuardClient, GuardSession
from services.gateway.keys import ApiKey
from services.gateway.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    Citation,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ResponseMessage,
    SearchResult,
    TextEvents,
    TokenLogprob,
    TopLogprob,
    UsageInfo,
    completion_id,
)
from services.gateway.routing import affinity_key
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Upstreams

log = logging.getLogger(__name__)

@dataclass
class Prepared:
    """What the pre-inference hops produced for one request."""

    request_id: str
    completion_id: str
    generate: inference_pb2.GenerateRequest
    tool_plan: tools.ToolPlan
    affinity: str
    headers: dict[str, str] = field(default_factory=dict)
    guard: GuardSession | None = None  # the request's guard policies and placeholder map
    chunks: list[rag_pb2.Chunk] = field(default_factory=list)  # retrieved context, sources [1], [2], ...
    question: str = ""  # the caller's question that searched them (for attributing the answer)

    @property
    def retrieval(self) -> bool:
        return citations.RAG_HEADER in self.headers

    def search_results(self) -> list[SearchResult] | None:
        """The chunks given as context when retrieval was asked for (possibly none found); None otherwise."""
        return [citations.search_result(n, c) for n, c in enumerate(self.chunks, 1)] if self.retrieval else None


def cache_salt(settings: GatewaySettings, tenant: str) -> str:
    """A per-tenant salt for vLLM's prefix cache, so tenants cannot probe each other's cached prompts."""
    if not settings.cache_salt_per_tenant:
        return ""
    return hashlib.sha256(f"{settings.cache_salt_secret}:{tenant}".encode()).hexdigest()[:32]


def logprobs_out(items: list[inference_pb2.TokenLogprob]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=lp.token, logprob=lp.logprob, bytes=list(lp.bytes),
            top_logprobs=[TopLogprob(token=t.token, logprob=t.logprob, bytes=list(t.bytes)) for t in lp.top],
        )
        for lp in items
    ]


def _affinity(messages: list[tuple[str, str, str]]) -> str:
    """Requests sharing their leading system prompt(s) — or, without one, the start of the first message —
    go to the same replica, where vLLM's prefix cache already holds those tokens."""
    leading = []
    for role, text, _ in messages:
        if role not in ("system", "developer"):
            break
        leading.append(text)
    return affinity_key(leading or [messages[0][1][:256]])


class ChatPipeline:
    def __init__(self, settings: GatewaySettings, upstreams: Upstreams) -> None:
        self.settings = settings
        self.up = upstreams
        self.guard = GuardClient(settings, upstreams.guard)

    # -- before inference ----------------------------------------------------------------------------

    async def prepare(
        self, req: ChatCompletionRequest, request_id: str, tenant: str | None = None, cid: str | None = None,
        retrieval: rag_pb2.RetrieveRequest | None = None,  # file_search of /v1/responses: its own k, filters
        principal: ApiKey | None = None,  # the caller's API key: its guard policy
    ) -> Prepared:
        tenant = tenant or self.settings.tenant_id
        if (name := req.unsupported_param()) is not None:
            raise OpenAIError(
                400, f"The '{name}' parameter is not supported by this deployment.",
                param=name, code="unsupported_parameter",
            )
        n = req.n or 1
        if n > self.settings.max_n:
            raise OpenAIError(400, f"Invalid value for 'n': at most {self.settings.max_n}.", param="n",
                              code="invalid_value")
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        sampling = sampling_params(req, n, req.effective_max_tokens, logprobs)
        tool_plan, tool_spec = tools.plan(req, sampling)

        messages = [(m.role, m.text(), m.name or "") for m in req.messages]
        headers: dict[str, str] = {}
        guard = self.guard.begin(request_id, principal)
        texts = await guard.scan_input([text for _, text, _ in messages], [role for role, _, _ in messages])
        messages = [(role, text, name) for (role, _, name), text in zip(messages, texts, strict=True)]

        affinity = _affinity(messages)  # before RAG context, which differs per query
        chunks: list[rag_pb2.Chunk] = []
        query = ""
        if req.vector_store_ids or retrieval is not None:
            # The caller's own question searches its own documents: restorable PII back, secrets still masked.
            last = max((i for i, (role, _, _) in enumerate(messages) if role == "user"), default=None)
            query = guard.restored(messages[last][1]) if last is not None else ""
            retrieved = await self._retrieve(request_id, query, req.vector_store_ids or [], tenant, retrieval)
            if retrieved is None:  # RAG unreachable, rag_fail_open: answer without context
                headers[degraded.RAG_HEADER] = "unavailable"
            chunks = await guard.filter_chunks(retrieved or [])
            headers["x-flotilla-rag-chunks"] = str(len(chunks))
            headers["x-flotilla-rag-chunks-dropped"] = str(guard.dropped_chunks)
            if chunks:
                if shown := guard.shown_in_context():  # e.g. a name the question shares with the documents
                    messages = [(role, restore(text, shown), name) for role, text, name in messages]
                messages.insert(0, ("system", citations.context_message(chunks), ""))

        generate = inference_pb2.GenerateRequest(
            request_id=request_id,
            model=req.model,
            chat=inference_pb2.ChatMessages(
                messages=[inference_pb2.ChatMessage(role=r, content=t, name=nm) for r, t, nm in messages]
            ),
            sampling=sampling,
            tenant_id=tenant,
            tools=tool_spec,
            cache_salt=cache_salt(self.settings, tenant),
            final_only=not req.stream,  # the answer goes out whole: one message per choice from vLLM
        )
        return Prepared(request_id, cid or completion_id(), generate, tool_plan, affinity, headers, guard, chunks,
                        query)

    async def _retrieve(
        self, request_id: str, query: str, store_ids: list[str], tenant: str | None = None,
        template: rag_pb2.RetrieveRequest | None = None,
    ) -> list[rag_pb2.Chunk] | None:
        """The chunks retrieved; None when RAG is unreachable and ``rag_fail_open`` is set."""
        request = rag_pb2.RetrieveRequest(vector_store_ids=store_ids, k=self.settings.rag_k)
        if template is not None:
            request.CopyFrom(template)
        request.request_id, request.tenant_id, request.query = request_id, tenant or self.settings.tenant_id, query
        try:
            resp = await self.up.rag.Retrieve(request, timeout=self.settings.rag_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if not degraded.unreachable(exc):
                raise from_grpc(exc, "rag") from None
            metrics.upstream_error("rag", exc.code().name)
            if not self.settings.rag_fail_open:
                raise degraded.rag_unavailable() from None
            metrics.RAG_DEGRADED.inc()
            log.warning("rag unreachable: answering without context (fail-open)",
                        extra={"f_code": exc.code().name, "f_request_id": request_id})
            return None
        return list(resp.chunks)

    def cite(self, prepared: Prepared, answer: str, clean: bool = False) -> list[citations.Cite]:
        """Where ``answer`` cites the request's retrieved chunks (model markers, else attribution)."""
        if not prepared.chunks:
            return []
        return citations.cite(answer, prepared.chunks, prepared.question, self.settings.citation_attribution,
                              self.settings.citation_min_support, clean)

    def citations_for(self, prepared: Prepared, answers: dict[int, str]) -> list[Citation] | None:
        """The chat ``citations`` of the answers (choice index → text) of a request that asked for retrieval."""
        if not prepared.retrieval:
            return None
        return [c for i, text in answers.items()
                for c in citations.citations(self.cite(prepared, text), prepared.chunks, i)]

    def _guard(self, prepared: Prepared) -> GuardSession:
        return prepared.guard or self.guard.begin(prepared.request_id)

    async def open(self, prepared: Prepared, acct: Accounting | None = None) -> Generation:
        gen = await Generation.open(
            self.up.inference, [prepared.generate], deadlines.inference_timeout(self.settings), prepared.affinity,
            prepared.guard.deferred_verdict() if prepared.guard is not None else None,
        )
        if acct is not None:
            acct.first_token()  # the first message has arrived
        return gen

    # -- non-streaming -------------------------------------------------------------------------------

    async def complete(
        self, req: ChatCompletionRequest, prepared: Prepared, acct: Accounting | None = None
    ) -> ChatCompletionResponse:
        n = req.n or 1
        texts: list[list[str]] = [[] for _ in range(n)]
        finish: list[str | None] = [None] * n
        lps: list[list[inference_pb2.TokenLogprob]] = [[] for _ in range(n)]
        auto_calls: list[list[inference_pb2.ToolCall]] = [[] for _ in range(n)]
        gen = await self.open(prepared, acct)
        try:
            async for _, msg in gen.messages():
                d = msg.delta
                texts[d.index].append(d.text)
                lps[d.index].extend(d.logprobs)
                auto_calls[d.index].extend(d.tool_calls)
                if d.finish_reason:
                    finish[d.index] = d.finish_reason
        finally:
            gen.close()
            if acct is not None:
                acct.usage, acct.finish_reason = gen.billed(), finish[0]
        contents = ["".join(parts) for parts in texts]
        scan = await self._guard(prepared).scan_output(contents)
        if acct is not None:
            acct.record_scan(scan)
        blocked: set[int] = set()
        if scan.verdict == guard_pb2.VERDICT_BLOCK:
            blocked = {f.text_index for f in scan.findings if f.action == "block"}
        elif len(scan.redacted_texts) == len(contents):  # redacted and/or the prompt's placeholders restored
            contents = list(scan.redacted_texts)
        choices = []
        cited: dict[int, str] = {}
        for i in range(n):
            message = ResponseMessage(content=contents[i])
            reason = finish[i]
            if i in blocked:
                message.content, reason = "", "content_filter"
            elif prepared.tool_plan.mode in ("named", "required"):
                message.tool_calls = tools.forced_calls(prepared.tool_plan, contents[i]) or None
                if message.tool_calls:
                    message.content = None
                    reason = "tool_calls" if prepared.tool_plan.mode == "required" and reason == "stop" else reason
            elif auto_calls[i]:
                message.tool_calls = tools.from_proto(auto_calls[i])
                message.content = contents[i] or None
            if message.content:
                cited[i] = message.content
            choices.append(ChatCompletionChoice(
                index=i, message=message, finish_reason=reason,
                logprobs=ChoiceLogprobs(content=logprobs_out(lps[i])) if req.logprobs else None,
            ))
        return ChatCompletionResponse(id=prepared.completion_id, model=req.model, choices=choices, usage=gen.usage,
                                      search_results=prepared.search_results(),
                                      citations=self.citations_for(prepared, cited))

    # -- streaming -----------------------------------------------------------------------------------

    async def open_stream(
        self, req: ChatCompletionRequest, prepared: Prepared, acct: Accounting | None = None
    ) -> AsyncIterator[str]:
        """Open the upstream stream first, so that errors such as an unknown model or an over-long prompt
        become HTTP errors instead of a broken event stream."""
        gen = await self.open(prepared, acct)
        return self._sse(req, prepared, gen, acct)

    async def _sse(
        self, req: ChatCompletionRequest, prepared: Prepared, gen: Generation, acct: Accounting | None = None
    ) -> AsyncIterator[str]:
        n = req.n or 1
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        created = int(time.time())
        texts: list[list[str]] = [[] for _ in range(n)]
        sent: list[list[str]] = [[] for _ in range(n)]  # the content the client got (what citations point into)
        exclude = None if include_usage else {"usage"}
        mode = prepared.tool_plan.mode
        named_ids = {i: tools.call_id() for i in range(n)} if mode == "named" else {}
        output_guard = self._guard(prepared).output_stream()  # releases text once it cannot start a match
        blocked: set[int] = set()  # choices the guard stopped (content_filter); with n > 1 the others go on

        def chunk(choices: list[ChatCompletionChunkChoice], usage: UsageInfo | None = None,
                  search_results: list[SearchResult] | None = None, cites: list[Citation] | None = None) -> str:
            body = ChatCompletionChunk(id=prepared.completion_id, created=created, model=req.model, choices=choices,
                                       usage=usage, search_results=search_results, citations=cites)
            return f"data: {body.model_dump_json(exclude=exclude)}\n\n"

        content_events = TextEvents(  # the common case (plain content, no logprobs), without per-token models
            lambda i, text: ChatCompletionChunk(id=prepared.completion_id, created=created, model=req.model,
                                                choices=[ChatCompletionChunkChoice(index=i, delta=DeltaMessage(
                                                    content=text))]),
            exclude,
        )

        def delta_for(i: int, text: str) -> DeltaMessage:
            if mode == "named":  # the constrained text *is* the arguments: stream it as such
                return DeltaMessage(tool_calls=[DeltaToolCall(index=0, function=DeltaFunctionCall(arguments=text))])
            return DeltaMessage(content=text)

        try:
            for i in range(n):
                first = DeltaMessage(role="assistant", content="" if mode != "named" else None)
                if mode == "named":
                    first.tool_calls = [DeltaToolCall(index=0, id=named_ids[i], type="function",
                                                      function=DeltaFunctionCall(name=prepared.tool_plan.function,
                                                                                 arguments=""))]
                yield chunk([ChatCompletionChunkChoice(index=i, delta=first)],
                            search_results=None if i else prepared.search_results())
            async for _, msg in gen.messages():
                d = msg.delta
                lp = ChoiceLogprobs(content=logprobs_out(list(d.logprobs))) if req.logprobs and d.logprobs else None
                if d.index in blocked:
                    continue
                if d.text or d.finish_reason:
                    texts[d.index].append(d.text)
                    safe = await output_guard.feed(d.index, d.text, final=bool(d.finish_reason))
                    if safe.blocked:
                        yield chunk([ChatCompletionChunkChoice(index=d.index, delta=DeltaMessage(),
                                                               finish_reason="content_filter")])
                        blocked.add(d.index)
                        if acct is not None:
                            acct.finish_reason, acct.guard_verdict = "content_filter", "block"
                        if len(blocked) == n:  # nothing left to stream: the error event ends it
                            raise output_guard.error()
                        continue
                    if safe.text and mode in ("auto", "none"):
                        sent[d.index].append(safe.text)
                    if safe.text and lp is None and mode in ("auto", "none"):
                        yield content_events.event(d.index, safe.text)
                    elif (safe.text or lp) and mode != "required":  # "required" calls come once complete
                        yield chunk([ChatCompletionChunkChoice(index=d.index, delta=delta_for(d.index, safe.text),
                                                               logprobs=lp)])
                calls = tools.from_proto(list(d.tool_calls))
                if mode == "required" and d.finish_reason:
                    calls = tools.forced_calls(prepared.tool_plan, "".join(texts[d.index]))
                if calls:
                    yield chunk([ChatCompletionChunkChoice(index=d.index, delta=DeltaMessage(tool_calls=[
                        DeltaToolCall(index=k, id=c.id, type="function",
                                      function=DeltaFunctionCall(name=c.function.name, arguments=c.function.arguments))
                        for k, c in enumerate(calls)]))])
                if d.finish_reason:
                    reason = "tool_calls" if calls and d.finish_reason == "stop" else d.finish_reason
                    if acct is not None:
                        acct.finish_reason = reason
                    cites = self.citations_for(prepared, {d.index: "".join(sent[d.index])})
                    yield chunk([ChatCompletionChunkChoice(index=d.index, delta=DeltaMessage(), finish_reason=reason)],
                                cites=cites)
            if include_usage:
                yield chunk([], gen.usage)
        except OpenAIError as exc:
            if acct is not None:
                acct.status = exc.status
                if exc.code == "content_policy_violation":
                    acct.finish_reason, acct.guard_verdict = "content_filter", "block"
            yield exc.sse_event()
        finally:
            output_guard.close()
            gen.close()
            if acct is not None:
                acct.usage = gen.billed()  # a client that left mid-stream pays for what it was sent
        yield "data: [DONE]\n\n"
