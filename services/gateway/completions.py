"""``POST /v1/completions``: legacy text completion, one inference request per prompt.

``echo``, ``suffix``, token-id prompts and ``best_of`` above ``n`` are refused with a clear error. The guard
works as for chat: one guard session per request scans the prompts, the whole answer (placeholders restored
for the caller) or, streamed, each delta as it comes (text held back only while it could start a match).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from flotilla.v1 import guard_pb2, inference_pb2
from services.gateway import deadlines
from services.gateway.access import Accounting
from services.gateway.chat import ChatPipeline, cache_salt
from services.gateway.errors import OpenAIError
from services.gateway.generation import Generation, sampling_params
from services.gateway.guard_client import GuardSession
from services.gateway.keys import ApiKey
from services.gateway.protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    TextEvents,
    cmpl_id,
)
from services.gateway.routing import affinity_key


def _refuse(param: str, message: str) -> OpenAIError:
    return OpenAIError(400, message, param=param, code="unsupported_parameter")


def _logprobs(items: list[inference_pb2.TokenLogprob], offset: int) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for lp in items:
        out.tokens.append(lp.token)
        out.token_logprobs.append(lp.logprob)
        out.top_logprobs.append({t.token: t.logprob for t in lp.top})
        out.text_offset.append(offset)
        offset += len(lp.token)
    return out


@dataclass
class CompletionPlan:
    """What ``prepare`` decided: one inference request per prompt, and the request's guard session."""

    requests: list[inference_pb2.GenerateRequest]
    guard: GuardSession


class CompletionPipeline:
    def __init__(self, chat: ChatPipeline) -> None:
        self.chat = chat
        self.settings = chat.settings

    async def prepare(
        self, req: CompletionRequest, request_id: str, tenant: str | None = None, principal: ApiKey | None = None
    ) -> CompletionPlan:
        tenant = tenant or self.settings.tenant_id
        if req.echo:
            raise _refuse("echo", "'echo' is not supported: the prompt is not returned with the completion.")
        if req.suffix:
            raise _refuse("suffix", "'suffix' (insertion) is not supported by this deployment.")
        if req.best_of is not None and req.best_of != (req.n or 1):
            raise _refuse("best_of", "'best_of' other than 'n' is not supported.")
        if not isinstance(req.prompt, str) and not all(isinstance(p, str) for p in req.prompt):
            raise _refuse("prompt", "Token-id prompts are not supported; send the prompt as text.")
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)  # type: ignore[arg-type]
        n = req.n or 1
        if n * len(prompts) > self.settings.max_n:
            raise OpenAIError(400, f"Invalid value for 'n': at most {self.settings.max_n} choices in all.",
                              param="n", code="invalid_value")
        sampling = sampling_params(req, n, req.max_tokens, req.logprobs)
        guard = self.chat.guard.begin(request_id, principal)
        prompts = await guard.scan_input(prompts)
        salt = cache_salt(self.settings, tenant)
        return CompletionPlan([
            inference_pb2.GenerateRequest(
                request_id=f"{request_id}-{i}" if len(prompts) > 1 else request_id, model=req.model,
                prompt=prompt, sampling=sampling, tenant_id=tenant, cache_salt=salt, final_only=not req.stream,
            )
            for i, prompt in enumerate(prompts)
        ], guard)

    async def open(self, plan: CompletionPlan, acct: Accounting | None = None) -> Generation:
        requests = plan.requests
        key = affinity_key([requests[0].prompt[:256]])
        gen = await Generation.open(self.chat.up.inference, requests, deadlines.inference_timeout(self.settings), key,
                                    plan.guard.deferred_verdict())
        if acct is not None:
            acct.first_token()
        return gen

    async def complete(self, req: CompletionRequest, plan: CompletionPlan, acct: Accounting | None = None
                       ) -> CompletionResponse:
        requests = plan.requests
        total = (req.n or 1) * len(requests)
        texts: list[list[str]] = [[] for _ in range(total)]
        lps: list[list[inference_pb2.TokenLogprob]] = [[] for _ in range(total)]
        finish: list[str | None] = [None] * total
        gen = await self.open(plan, acct)
        try:
            async for offset, msg in gen.messages():
                i = offset + msg.delta.index
                texts[i].append(msg.delta.text)
                lps[i].extend(msg.delta.logprobs)
                if msg.delta.finish_reason:
                    finish[i] = msg.delta.finish_reason
        finally:
            gen.close()
            if acct is not None:
                acct.usage, acct.finish_reason = gen.billed(), finish[0]
        contents = await self._guard_output(plan.guard, ["".join(t) for t in texts], finish, acct)
        return CompletionResponse(
            id=acct.id if acct is not None and acct.id else cmpl_id(),
            model=req.model,
            choices=[
                CompletionChoice(index=i, text=contents[i], finish_reason=finish[i],
                                 logprobs=_logprobs(lps[i], 0) if req.logprobs is not None else None)
                for i in range(total)
            ],
            usage=gen.usage,
        )

    @staticmethod
    async def _guard_output(
        guard: GuardSession, contents: list[str], finish: list[str | None], acct: Accounting | None = None
    ) -> list[str]:
        scan = await guard.scan_output(contents)
        if acct is not None:
            acct.record_scan(scan)
        if scan.verdict == guard_pb2.VERDICT_BLOCK:
            for i in {f.text_index for f in scan.findings if f.action == "block"}:
                contents[i], finish[i] = "", "content_filter"
        elif len(scan.redacted_texts) == len(contents):  # redacted and/or the prompt's placeholders restored
            return list(scan.redacted_texts)
        return contents

    async def open_stream(self, req: CompletionRequest, plan: CompletionPlan, acct: Accounting | None = None
                          ) -> AsyncIterator[str]:
        gen = await self.open(plan, acct)
        return self._sse(req, gen, plan.guard, acct)

    async def _sse(
        self, req: CompletionRequest, gen: Generation, guard: GuardSession, acct: Accounting | None = None
    ) -> AsyncIterator[str]:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        cid, created = (acct.id if acct is not None and acct.id else cmpl_id()), int(time.time())
        exclude = None if include_usage else {"usage"}
        offsets: dict[int, int] = {}
        output_guard = guard.output_stream()  # releases text once it cannot start a match
        blocked: set[int] = set()  # choices the guard stopped (content_filter); the others go on
        total = (req.n or 1) * len(gen.streams)

        def event(choices: list[CompletionChoice], usage=None) -> str:
            body = CompletionResponse(id=cid, created=created, model=req.model, choices=choices, usage=usage)
            return f"data: {body.model_dump_json(exclude=exclude)}\n\n"

        text_events = TextEvents(  # plain text deltas without logprobs: no per-token models
            lambda i, text: CompletionResponse(id=cid, created=created, model=req.model,
                                               choices=[CompletionChoice(index=i, text=text)]),
            exclude,
        )

        try:
            async for offset, msg in gen.messages():
                d = msg.delta
                i = offset + d.index
                if i in blocked:
                    continue
                lp = None
                if req.logprobs is not None:
                    lp = _logprobs(list(d.logprobs), offsets.get(i, 0))
                offsets[i] = offsets.get(i, 0) + len(d.text)
                safe = await output_guard.feed(i, d.text, final=bool(d.finish_reason))
                if safe.blocked:
                    yield event([CompletionChoice(index=i, text="", finish_reason="content_filter")])
                    blocked.add(i)
                    if acct is not None:
                        acct.finish_reason, acct.guard_verdict = "content_filter", "block"
                    if len(blocked) == total:  # nothing left to stream: the error event ends it
                        raise output_guard.error()
                    continue
                if lp is None and not d.finish_reason:
                    if safe.text:
                        yield text_events.event(i, safe.text)
                    continue
                choice = CompletionChoice(index=i, text=safe.text, logprobs=lp, finish_reason=d.finish_reason or None)
                if acct is not None and d.finish_reason:
                    acct.finish_reason = d.finish_reason
                yield event([choice])
            if include_usage:
                yield event([], gen.usage)
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
                acct.usage = gen.billed()
        yield "data: [DONE]\n\n"
