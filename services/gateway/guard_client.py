"""The gateway's side of the guard: which policy a request gets, and the guard calls of one request.

Policies come from a :class:`PolicySource`: :class:`KeyPolicySource` lays the caller's API-key policy
(``flotilla keys create --guard-input …``) rule by rule over the gateway's ``guard_*_policy`` settings, which
the guard lays over its own defaults; a key without a policy, or no key, gets the settings' policies.

Reversible masking: the guard returns, for PII rules with ``restore``, the placeholder → value map of
the prompt; the gateway keeps it in memory for this request only and hands it back to the output scan,
which restores the values in the answer. The model never sees them; secrets are never restorable. The
retrieved chunks the model was given go to the output scan too (``context``): PII the answer copies from
the caller's own documents, like the caller's own restored values, is not redacted again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import grpc

from flotilla.guardpolicy import RuleSpec, parse_policy, restore, to_proto
from flotilla.v1 import guard_pb2, rag_pb2
from services.gateway import degraded, metrics
from services.gateway.errors import OpenAIError, from_grpc
from services.gateway.output_guard import OutputGuard, UnguardedOutput
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

Stage = Literal["input", "output", "retrieved"]


@dataclass(frozen=True)
class GuardPolicies:
    """The policy of each stage for one request (None: the guard's default for that stage)."""

    input: guard_pb2.Policy | None = None
    output: guard_pb2.Policy | None = None
    retrieved: guard_pb2.Policy | None = None

    def for_stage(self, stage: Stage) -> guard_pb2.Policy | None:
        return getattr(self, stage)


class PolicySource(Protocol):
    def policies(self, principal: Any | None) -> GuardPolicies: ...


class KeyPolicySource:
    """The gateway's ``guard_*_policy`` settings (validated at start-up; empty: the guard's defaults), with the
    caller's API-key policy laid over them stage by stage and rule by rule. A key rule without a threshold
    keeps the gateway's threshold for that scanner. Built policies are cached per key and policy."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.name = settings.guard_policy_name
        self.base: dict[str, dict[str, RuleSpec]] = {
            "input": parse_policy(settings.guard_input_policy),
            "output": parse_policy(settings.guard_output_policy),
            "retrieved": parse_policy(settings.guard_retrieved_policy),
        }
        self.default = GuardPolicies(**{stage: self._build(rules, self.name) for stage, rules in self.base.items()})
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], GuardPolicies] = {}

    @staticmethod
    def _build(rules: dict[str, RuleSpec], name: str) -> guard_pb2.Policy | None:
        return to_proto(rules, name) if rules else None

    def policies(self, principal: Any | None) -> GuardPolicies:
        overrides = getattr(principal, "guard_policy", ())
        if not overrides:
            return self.default
        cache_key = (principal.id, overrides)
        found = self._cache.get(cache_key)
        if found is None:
            stages: dict[str, guard_pb2.Policy | None] = {}
            for stage, base in self.base.items():
                spec = dict(overrides).get(stage)
                if not spec:
                    stages[stage] = getattr(self.default, stage)
                    continue
                merged = dict(base)
                for scanner, rule in parse_policy(spec).items():
                    if rule.threshold is None and scanner in base:
                        rule = RuleSpec(rule.scanner, rule.action, base[scanner].threshold, rule.restore)
                    merged[scanner] = rule
                stages[stage] = self._build(merged, f"key:{principal.name}")
            if len(self._cache) > 10_000:  # keys whose policy changed many times: start over
                self._cache.clear()
            found = self._cache[cache_key] = GuardPolicies(**stages)
        return found


def policy_error(kinds: list[str], what: str = "request") -> OpenAIError:
    return OpenAIError(
        400,
        f"Your {what} was rejected by the content policy" + (f" ({', '.join(kinds)})." if kinds else "."),
        param="messages",
        code="content_policy_violation",
    )


@dataclass
class GuardSession:
    """The guard calls of one chat request (and what they carry from one to the next)."""

    stub: Any
    settings: GatewaySettings
    request_id: str
    policies: GuardPolicies
    restore: dict[str, str] = field(default_factory=dict)  # placeholder → the caller's value, this request only
    context: list[str] = field(default_factory=list)  # the retrieved chunks given to the model (as it saw them)
    dropped_chunks: int = 0
    # For the usage ledger: the strictest verdict of this request's scans and the finding types (never text).
    verdict: str | None = None
    finding_types: set[str] = field(default_factory=set)
    enabled: bool = True  # False: the guard is turned off in settings; every scan passes the text through
    skipped: bool = False  # the guard was unreachable and a scan was skipped (guard_fail_open)
    tenant_id: str = ""  # the caller's tenant (the gateway's own when there are no keys)
    # The input scan's deferred slow stage (ScanDeferred), running while the model reads the prompt: its outcome
    # is the error to raise (a block, or the guard failing), or None.
    _deferred: asyncio.Task[OpenAIError | None] | None = field(default=None, repr=False)

    def _request(self, stage: Stage, texts: list[str], restore: bool = False) -> guard_pb2.ScanRequest:
        req = guard_pb2.ScanRequest(request_id=self.request_id, tenant_id=self.tenant_id or self.settings.tenant_id,
                                    texts=texts)
        policy = self.policies.for_stage(stage)
        if policy is not None:
            req.policy.CopyFrom(policy)
        if restore:
            req.restore.update(self.restore)
            req.context.extend(self.context)
        return req

    async def _call(self, rpc: str, request: guard_pb2.ScanRequest) -> guard_pb2.ScanResponse | None:
        """The guard's answer; None when the guard is unreachable and the settings say fail open. With the
        guard turned off: an empty answer (no verdict, no findings, texts unchanged)."""
        if not self.enabled:
            return guard_pb2.ScanResponse()
        try:
            resp = await getattr(self.stub, rpc)(request, timeout=self.settings.guard_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if self.skip(exc, rpc):
                return None
            raise self.error(exc) from None
        self._note(resp)
        return resp

    def error(self, exc: grpc.aio.AioRpcError) -> OpenAIError:
        return degraded.guard_unavailable() if degraded.unreachable(exc) else from_grpc(exc, "guard")

    def skip(self, exc: grpc.aio.AioRpcError, rpc: str) -> bool:
        """Fail open? Only for an unreachable guard and only when configured; counted once per request.
        (Called first for every failed guard call: an unreachable guard counts as an upstream error here, other
        failures when :func:`from_grpc` maps them.)"""
        if not degraded.unreachable(exc):
            return False
        metrics.upstream_error("guard", exc.code().name)
        if not self.settings.guard_fail_open:
            return False
        if not self.skipped:
            self.skipped = True
            self.finding_types.add(degraded.GUARD_SKIPPED_FINDING)
            metrics.GUARD_FAIL_OPEN.inc()
        log.warning("guard unreachable: scan skipped (fail-open)",
                    extra={"f_rpc": rpc, "f_code": exc.code().name, "f_request_id": self.request_id})
        return True

    def _note(self, resp: guard_pb2.ScanResponse) -> None:
        rank = {None: -1, "allow": 0, "redact": 1, "block": 2}
        verdict = {guard_pb2.VERDICT_ALLOW: "allow", guard_pb2.VERDICT_REDACT: "redact",
                   guard_pb2.VERDICT_BLOCK: "block"}.get(resp.verdict)
        if rank[verdict] > rank[self.verdict]:
            self.verdict = verdict
        self.finding_types.update(f.type for f in resp.findings)

    async def scan_input(self, texts: list[str], roles: list[str] | None = None) -> list[str]:
        """The texts the model may see: raises the OpenAI error on block, returns redacted texts. ``roles``
        (one chat role per text) lets the guard trust the operator's system messages."""
        request = self._request("input", texts)
        request.roles.extend(roles or [])
        request.defer_slow = self.settings.guard_defer_slow
        resp = await self._call("ScanInput", request)
        if resp is None:
            return texts
        if resp.verdict == guard_pb2.VERDICT_BLOCK:
            raise _blocked(resp)
        if resp.deferred:
            later = self._request("input", [texts[i] for i in resp.deferred])
            self._deferred = asyncio.ensure_future(self._scan_deferred(later))
        self.restore.update(resp.placeholders)
        if len(resp.redacted_texts) == len(texts):
            return list(resp.redacted_texts)
        return texts

    async def _scan_deferred(self, request: guard_pb2.ScanRequest) -> OpenAIError | None:
        """ScanDeferred's outcome as a value (so a task nobody awaits, the request having failed meanwhile, logs
        nothing): the block or the guard's failure to raise, or None."""
        try:
            resp = await self._call("ScanDeferred", request)
        except OpenAIError as exc:
            return exc
        if resp is not None and resp.verdict == guard_pb2.VERDICT_BLOCK:
            return _blocked(resp)
        return None

    def deferred_verdict(self) -> Awaitable[None] | None:
        """The rest of the input scan when the guard deferred its slow stage (``guard_defer_slow``): an awaitable
        that raises the block, for :meth:`Generation.open` to await while the model reads the prompt; None when
        nothing is pending. No output may be released before it has returned."""
        if self._deferred is None:
            return None
        task, self._deferred = self._deferred, None
        return _raise_outcome(task)

    def restored(self, text: str) -> str:
        """``text`` (a masked prompt) with the caller's restorable values back: what may search the caller's own
        documents. Secrets stay masked."""
        return restore(text, self.restore)

    def shown_in_context(self) -> dict[str, str]:
        """The caller's masked values that the retrieved chunks given to the model contain anyway: masking them
        in the prompt hides nothing from the model, it only breaks the match between question and sources."""
        return {p: v for p, v in self.restore.items() if any(v in c for c in self.context)}

    async def filter_chunks(self, chunks: list[rag_pb2.Chunk]) -> list[rag_pb2.Chunk]:
        """Retrieved chunks without those flagged for (indirect) injection; others may come back redacted."""
        if not chunks:
            return chunks
        resp = await self._call("ScanRetrieved", self._request("retrieved", [c.text for c in chunks]))
        if resp is None:
            self.context.extend(c.text for c in chunks)
            return chunks
        kept = []
        redacted = list(resp.redacted_texts) if len(resp.redacted_texts) == len(chunks) else None
        for i, chunk in enumerate(chunks):
            if i < len(resp.text_verdicts) and resp.text_verdicts[i] == guard_pb2.VERDICT_BLOCK:
                continue
            if redacted is not None and redacted[i] != chunk.text:
                chunk = rag_pb2.Chunk()
                chunk.CopyFrom(chunks[i])
                chunk.text = redacted[i]
            kept.append(chunk)
        self.context.extend(c.text for c in kept)
        self.dropped_chunks += len(chunks) - len(kept)
        if self.dropped_chunks:
            log.info("retrieved chunks dropped", extra={"f_dropped": self.dropped_chunks,
                                                        "f_types": sorted({f.type for f in resp.findings})})
        return kept

    async def scan_output(self, texts: list[str]) -> guard_pb2.ScanResponse:
        """The guard's verdict on the answer (an empty response — no verdict — when skipped)."""
        resp = await self._call("ScanOutput", self._request("output", texts, restore=True))
        return resp if resp is not None else guard_pb2.ScanResponse()

    def output_stream(self) -> OutputGuard | UnguardedOutput:
        """The guard's view of a streamed answer: feed each delta, emit what it releases."""
        if not self.enabled:
            return UnguardedOutput()
        return OutputGuard(
            self.stub,
            guard_pb2.OutputStreamStart(
                request_id=self.request_id,
                tenant_id=self.tenant_id or self.settings.tenant_id,
                policy=self.policies.output,
                restore=self.restore,
                context=self.context,
            ),
            timeout=self.settings.inference_timeout_s,
            error=self.error,
            skip=lambda exc: self.skip(exc, "ScanOutputStream"),
        )


class GuardClient:
    def __init__(self, settings: GatewaySettings, stub: Any, source: PolicySource | None = None) -> None:
        self.settings = settings
        self.stub = stub
        self.source = source or KeyPolicySource(settings)

    def begin(self, request_id: str, principal: Any | None = None) -> GuardSession:
        """The guard calls of one request; ``principal`` is the caller's API key (its policy and tenant)."""
        return GuardSession(self.stub, self.settings, request_id, self.source.policies(principal),
                            enabled=self.settings.guard_enabled,
                            tenant_id=getattr(principal, "tenant_id", None) or self.settings.tenant_id)


def _blocked(resp: guard_pb2.ScanResponse) -> OpenAIError:
    """The 400 for a blocked scan, naming the finding types that blocked it."""
    return policy_error(sorted({f.type for f in resp.findings if f.action == "block"}))


async def _raise_outcome(task: asyncio.Task[OpenAIError | None]) -> None:
    if (error := await task) is not None:
        raise error
