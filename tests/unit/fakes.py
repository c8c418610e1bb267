"""Named fakes of the gateway's upstream gRPC stubs, for unit tests of the request/response mapping only.

``FakeInferenceEngine`` answers "echo: <last user message>" word by word; ``FakeGuard`` applies a fixed
verdict; ``FakeRag`` returns fixed chunks. Each records what it was sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from flotilla.grpcerrors import CODE_KEY, PARAM_KEY
from flotilla.v1 import guard_pb2, inference_pb2, rag_pb2
from services.gateway.access import Access
from services.gateway.keys import ApiKey
from services.gateway.routing import InferenceRouter
from services.gateway.upstreams import Upstreams

FAKE_MODEL = "fake-model"


def rpc_error(code: grpc.StatusCode, details: str, error_code: str = "", param: str = "") -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata((CODE_KEY, error_code), (PARAM_KEY, param))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=details)


class FakeCall:
    """Mimics ``grpc.aio.UnaryStreamCall``: ``read()``, async iteration and ``cancel()``."""

    def __init__(self, messages: list[inference_pb2.GenerateResponse], error: grpc.aio.AioRpcError | None,
                 error_after: int = 0) -> None:
        self._messages = list(messages)
        self._error = error
        self._error_after = error_after  # messages read before ``error`` is raised (a stream cut mid-way)
        self.cancelled = False

    async def read(self):
        if self._error is not None and self._error_after <= 0:
            raise self._error
        self._error_after -= 1
        return self._messages.pop(0) if self._messages else grpc.aio.EOF

    def __aiter__(self):
        return self

    async def __anext__(self):
        msg = await self.read()
        if msg is grpc.aio.EOF:
            raise StopAsyncIteration
        return msg

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class FakeInferenceEngine:
    """Answers "echo: <last user message or prompt>" (or ``reply``) word by word."""

    requests: list[inference_pb2.GenerateRequest] = field(default_factory=list)
    calls: list[FakeCall] = field(default_factory=list)
    reply: str | None = None
    unavailable: bool = False  # answer every call with UNAVAILABLE, like a replica that went away
    fail_code: grpc.StatusCode | None = None  # answer every call with this status (e.g. UNKNOWN: a dead engine)
    cut_after: int | None = None  # the stream fails with UNAVAILABLE after this many messages (replica killed)
    timeouts: list[float | None] = field(default_factory=list)  # the deadline of each call
    # With tools.auto, the last delta carries these calls (as the replica's tool parser would) and no text.
    auto_tool_calls: list[inference_pb2.ToolCall] = field(default_factory=list)

    def Generate(self, request: inference_pb2.GenerateRequest, timeout: float | None = None) -> FakeCall:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if self.unavailable or self.fail_code is not None:
            call = FakeCall([], rpc_error(self.fail_code or grpc.StatusCode.UNAVAILABLE, "connection refused"))
        elif request.model != FAKE_MODEL:
            err = rpc_error(grpc.StatusCode.NOT_FOUND, f"The model `{request.model}` does not exist.",
                            "model_not_found", "model")
            call = FakeCall([], err)
        else:
            messages = request.chat.messages
            last_user = next((m.content for m in reversed(messages) if m.role == "user"), request.prompt)
            words = (self.reply if self.reply is not None else "echo: " + last_user).split(" ")
            limit = request.sampling.max_tokens if request.sampling.HasField("max_tokens") else len(words)
            out: list[inference_pb2.GenerateResponse] = []
            n = request.sampling.n or 1
            for index in range(n):
                emitted = words[:limit]
                for i, word in enumerate(emitted):
                    last = i == len(emitted) - 1
                    finish = ("stop" if limit >= len(words) else "length") if last else ""
                    text = word if i == 0 else " " + word
                    delta = inference_pb2.TextDelta(index=index, text=text, finish_reason=finish, token_count=1)
                    if last and request.tools.auto and self.auto_tool_calls:
                        delta.tool_calls.extend(self.auto_tool_calls)
                        delta.finish_reason = "tool_calls"
                    if request.sampling.HasField("logprobs"):
                        top = [inference_pb2.TopLogprob(token=f"alt{k}", logprob=-1.0 - k)
                               for k in range(request.sampling.logprobs)]
                        delta.logprobs.append(inference_pb2.TokenLogprob(token=text, logprob=-0.5,
                                                                         bytes=text.encode(), top=top))
                    out.append(inference_pb2.GenerateResponse(delta=delta))
            prompt_tokens = sum(len(m.content.split()) for m in messages) or len(request.prompt.split())
            out.append(inference_pb2.GenerateResponse(usage=inference_pb2.Usage(
                prompt_tokens=prompt_tokens, completion_tokens=n * min(limit, len(words)))))
            cut = rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed") if self.cut_after is not None else None
            call = FakeCall(out, cut, self.cut_after or 0)
        self.calls.append(call)
        return call

    async def ListModels(self, request, timeout: float | None = None) -> inference_pb2.ListModelsResponse:
        return inference_pb2.ListModelsResponse(models=[
            inference_pb2.ModelCard(id=FAKE_MODEL, max_model_len=2048, created=1, owned_by="flotilla")])


@dataclass
class FakeGuard:
    input_verdict: int = guard_pb2.VERDICT_ALLOW
    output_verdict: int = guard_pb2.VERDICT_ALLOW
    redact_with: str = "[REDACTED]"
    inputs: list[list[str]] = field(default_factory=list)
    outputs: list[list[str]] = field(default_factory=list)
    requests: list[guard_pb2.ScanRequest] = field(default_factory=list)
    stream_starts: list[guard_pb2.OutputStreamStart] = field(default_factory=list)
    block_on: str | None = None  # streamed output: block once the text contains this
    block_index: int | None = None  # ... only in this choice (None: in any)
    retrieved_block: set[str] = field(default_factory=set)  # chunks containing one of these are dropped
    moderation_words: dict[str, str] = field(default_factory=lambda: {"idiot": "harassment"})
    moderated: list[list[str]] = field(default_factory=list)
    moderate_requests: list[guard_pb2.ModerateRequest] = field(default_factory=list)
    input_placeholders: dict[str, str] = field(default_factory=dict)  # returned by ScanInput (restore rules)
    # ScanInput masks these values with their placeholders (value → placeholder) and returns them for restoring.
    input_masks: dict[str, str] = field(default_factory=dict)
    error: grpc.aio.AioRpcError | None = None  # every scan fails with this (e.g. UNAVAILABLE: guard unreachable)
    # Set: a ScanInput with ``defer_slow`` leaves every text to ScanDeferred, which answers this verdict after
    # ``deferred_delay_s`` (the real guard's slow stage, running while inference starts).
    deferred_verdict: int | None = None
    deferred_delay_s: float = 0.0
    deferred: list[list[str]] = field(default_factory=list)  # texts ScanDeferred was sent
    deferred_error: grpc.aio.AioRpcError | None = None  # ScanDeferred alone fails with this

    def _fail(self) -> None:
        if self.error is not None:
            raise self.error

    def _answer(self, verdict: int, texts: list[str]) -> guard_pb2.ScanResponse:
        findings = [guard_pb2.Finding(type="fake.finding", text_index=0, start=0, end=1, score=1.0,
                                      action={guard_pb2.VERDICT_BLOCK: "block"}.get(verdict, "redact"))]
        if verdict == guard_pb2.VERDICT_ALLOW:
            return guard_pb2.ScanResponse(verdict=verdict)
        redacted = [self.redact_with for _ in texts] if verdict == guard_pb2.VERDICT_REDACT else []
        return guard_pb2.ScanResponse(verdict=verdict, findings=findings, redacted_texts=redacted)

    async def ScanInput(self, request: guard_pb2.ScanRequest, timeout: float | None = None):
        self._fail()
        self.inputs.append(list(request.texts))
        self.requests.append(request)
        answer = self._answer(self.input_verdict, list(request.texts))
        answer.placeholders.update(self.input_placeholders)
        masked = list(request.texts)
        for value, label in self.input_masks.items():
            if any(value in t for t in masked):
                masked = [t.replace(value, label) for t in masked]
                answer.placeholders[label] = value
        if masked != list(request.texts) and answer.verdict != guard_pb2.VERDICT_BLOCK:
            answer.verdict = guard_pb2.VERDICT_REDACT
            answer.redacted_texts[:] = masked
        if request.defer_slow and self.deferred_verdict is not None and answer.verdict != guard_pb2.VERDICT_BLOCK:
            answer.deferred.extend(range(len(request.texts)))
        return answer

    async def ScanDeferred(self, request: guard_pb2.ScanRequest, timeout: float | None = None):
        self._fail()
        if self.deferred_error is not None:
            raise self.deferred_error
        self.deferred.append(list(request.texts))
        self.requests.append(request)
        await asyncio.sleep(self.deferred_delay_s)
        return self._answer(self.deferred_verdict or guard_pb2.VERDICT_ALLOW, list(request.texts))

    async def ScanOutput(self, request: guard_pb2.ScanRequest, timeout: float | None = None):
        self._fail()
        self.outputs.append(list(request.texts))
        self.requests.append(request)
        return self._answer(self.output_verdict, list(request.texts))

    async def ScanRetrieved(self, request: guard_pb2.ScanRequest, timeout: float | None = None):
        self._fail()
        self.requests.append(request)
        verdicts = [guard_pb2.VERDICT_BLOCK if any(b in t for b in self.retrieved_block) else guard_pb2.VERDICT_ALLOW
                    for t in request.texts]
        overall = guard_pb2.VERDICT_BLOCK if guard_pb2.VERDICT_BLOCK in verdicts else guard_pb2.VERDICT_ALLOW
        return guard_pb2.ScanResponse(verdict=overall, text_verdicts=verdicts)

    def ScanOutputStream(self, timeout: float | None = None) -> FakeOutputStreamCall:
        return FakeOutputStreamCall(self)

    async def Moderate(self, request: guard_pb2.ModerateRequest, timeout: float | None = None):
        self.moderated.append(list(request.texts))
        self.moderate_requests.append(request)
        results = []
        for text in request.texts:
            hits = {c for word, c in self.moderation_words.items() if word in text.lower()}
            cats = [guard_pb2.CategoryScore(category=c, score=0.99 if c in hits else 0.01, flagged=c in hits)
                    for c in ("harassment", "prompt_injection", "pii", "secrets")]
            results.append(guard_pb2.Moderation(flagged=bool(hits), categories=cats,
                                                finding_types=sorted(f"fake.{c}" for c in hits)))
        return guard_pb2.ModerateResponse(results=results)


class FakeOutputStreamCall:
    """Mimics the bidi ``ScanOutputStream`` call: ALLOW echoes each delta; ``block_on`` (a substring of the
    text so far) blocks mid-stream; an output verdict of BLOCK blocks at the final delta and one of REDACT
    holds everything back and releases ``redact_with`` at the end. Full texts land in ``guard.outputs``."""

    def __init__(self, guard: FakeGuard) -> None:
        self.guard = guard
        self.texts: dict[int, str] = {}
        self.replies: list[guard_pb2.OutputStreamResponse] = []
        self.cancelled = False

    async def write(self, msg: guard_pb2.OutputStreamRequest) -> None:
        g = self.guard
        g._fail()
        if msg.HasField("start"):
            g.stream_starts.append(msg.start)
            return
        d = msg.delta
        text = self.texts[d.index] = self.texts.get(d.index, "") + d.text
        verdict, out = guard_pb2.VERDICT_ALLOW, d.text
        hit = bool(g.block_on and g.block_on in text and g.block_index in (None, d.index))
        if hit or (d.final and g.output_verdict == guard_pb2.VERDICT_BLOCK):
            verdict, out = guard_pb2.VERDICT_BLOCK, ""
        elif g.output_verdict == guard_pb2.VERDICT_REDACT:
            verdict, out = (guard_pb2.VERDICT_REDACT, g.redact_with) if d.final else (guard_pb2.VERDICT_ALLOW, "")
        if d.final or verdict == guard_pb2.VERDICT_BLOCK:
            g.outputs.append([text])
        blocked = verdict == guard_pb2.VERDICT_BLOCK
        findings = [guard_pb2.Finding(type="fake.finding", action="block")] if blocked else []
        self.replies.append(guard_pb2.OutputStreamResponse(index=d.index, text=out, verdict=verdict, findings=findings))

    async def read(self):
        return self.replies.pop(0) if self.replies else grpc.aio.EOF

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class FakeRag:
    chunks: list[rag_pb2.Chunk] = field(default_factory=list)
    requests: list[rag_pb2.RetrieveRequest] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None

    async def Retrieve(self, request: rag_pb2.RetrieveRequest, timeout: float | None = None):
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return rag_pb2.RetrieveResponse(chunks=self.chunks if request.vector_store_ids else [])


def fake_upstreams(**kwargs) -> Upstreams:
    """Upstreams whose inference router (the real one) routes over fake replicas."""
    replicas = kwargs.get("replicas") or {"fake-0": kwargs.get("inference", FakeInferenceEngine())}
    return Upstreams(
        inference=InferenceRouter.from_stubs(replicas),
        guard=kwargs.get("guard", FakeGuard()),
        rag=kwargs.get("rag", FakeRag()),
    )


def fake_access(settings, **limits) -> tuple[Access, str]:
    """An Access with no database whose key cache holds one key; returns it and the key to send."""
    import asyncio
    import hashlib
    from datetime import UTC, datetime

    access = Access(settings, None)
    key = "fl-abc123.unit-test-secret"
    access.keys.keys["abc123"] = ApiKey(
        id="abc123", name="unit", tenant_id=limits.pop("tenant_id", "tenant-unit"),
        secret_sha256=hashlib.sha256(key.encode()).digest(), models=limits.pop("models", None),
        rpm=limits.pop("rpm", None), tpm=limits.pop("tpm", None),
        max_budget_tokens=limits.pop("max_budget_tokens", None), spent_tokens=limits.pop("spent_tokens", 0),
        created_at=datetime.now(UTC), revoked_at=None,
        guard_policy=tuple(sorted(limits.pop("guard_policy", {}).items())),
    )
    assert not limits, limits
    access.keys.loaded = asyncio.Event()
    access.keys.loaded.set()
    return access, key


@dataclass
class FakeHealth:
    """Mimics a ``grpc.health.v1`` stub: answers ``status`` (or raises ``error``) and counts the calls."""

    status: str = "SERVING"
    error: grpc.aio.AioRpcError | None = None
    calls: int = 0

    async def Check(self, request, timeout: float | None = None):
        from grpc_health.v1 import health_pb2

        self.calls += 1
        if self.error is not None:
            raise self.error
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.ServingStatus.Value(self.status))


@dataclass
class FakePool:
    """Mimics the part of an ``asyncpg.Pool`` the readiness probe uses: ``fetchval`` (or ``error``)."""

    error: Exception | None = None
    calls: int = 0

    async def fetchval(self, query: str):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return 1


def fake_client(settings=None, **upstreams):
    """The stock ``openai`` client on a gateway app (in process) over named fakes of the upstreams."""
    import httpx
    import openai

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    settings = settings or GatewaySettings()
    access, key = fake_access(settings)
    app = create_app(settings, fake_upstreams(**upstreams), access)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http, max_retries=0)
