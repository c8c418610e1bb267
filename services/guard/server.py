"""The Guard gRPC servicer: input, output, retrieved-chunk and streamed-output scans, and moderation.

Scanning is CPU work (spaCy, onnxruntime, regexes); it runs on a thread pool so the event loop keeps
serving other calls. Logs carry finding types and counts only — never scanned text or matched values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import grpc

from flotilla.guardpolicy import PolicyError
from flotilla.v1 import guard_pb2, guard_pb2_grpc
from services.guard.engine import Engine, ScanResult
from services.guard.metrics import SCAN_SECONDS, VERDICTS
from services.guard.policy import Finding, Policy
from services.guard.settings import GuardSettings
from services.guard.stream import OutputStream

log = logging.getLogger(__name__)

_VERDICTS = {
    "allow": guard_pb2.VERDICT_ALLOW,
    "redact": guard_pb2.VERDICT_REDACT,
    "block": guard_pb2.VERDICT_BLOCK,
}


class GuardServicer(guard_pb2_grpc.GuardServicer):
    def __init__(self, settings: GuardSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else Engine.from_settings(settings)
        self.defaults = {
            "input": Policy.parse(settings.input_policy, "default"),
            "output": Policy.parse(settings.output_policy, "default"),
            "retrieved": Policy.parse(settings.retrieved_policy, "default"),
        }
        # Scans are CPU-bound and mostly hold the GIL: one thread per core this process may run on.
        workers = settings.scan_workers or len(os.sched_getaffinity(0))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="scan")
        # ScanDeferred's MiniLM passes run while the model already reads the prompt; in a pool of their own they
        # never queue the scans a request is waiting on (ScanInput's first part, output deltas) behind them.
        self.deferred_pool = ThreadPoolExecutor(settings.deferred_workers or workers, thread_name_prefix="deferred")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.deferred_pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn, *args, pool: ThreadPoolExecutor | None = None):
        return await asyncio.get_running_loop().run_in_executor(pool or self.pool, partial(fn, *args))

    async def _policy(self, stage: str, policy: guard_pb2.Policy | None, context) -> Policy:
        try:
            return self.defaults[stage].with_request(policy)
        except PolicyError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid guard policy: {exc}")
            raise  # unreachable: abort raises

    async def _scan(self, stage: str, request: guard_pb2.ScanRequest, context) -> guard_pb2.ScanResponse:
        # ScanDeferred finishes an input scan: the input stage's default policy.
        default = "input" if stage == "deferred" else stage
        policy = await self._policy(default, request.policy if request.HasField("policy") else None, context)
        roles = list(request.roles)
        if roles and len(roles) != len(request.texts):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "roles must be empty or one per text")
        started = time.perf_counter()
        if stage == "deferred":
            result: ScanResult = await self._run(self.engine.scan_deferred, list(request.texts), policy,
                                                 pool=self.deferred_pool)
        else:
            result = await self._run(
                self.engine.scan, list(request.texts), policy, dict(request.restore),
                roles if stage == "input" else None, list(request.context) if stage == "output" else None,
                stage == "input" and request.defer_slow,
            )
        SCAN_SECONDS.labels(stage).observe(time.perf_counter() - started)
        VERDICTS.labels(stage, result.verdict).inc()
        if result.findings:
            _log_findings(stage, request.request_id, policy.name, result.verdict, result.findings)
        return guard_pb2.ScanResponse(
            verdict=_VERDICTS[result.verdict],
            findings=[_finding(f) for f in result.findings],
            redacted_texts=result.texts or [],
            text_verdicts=[_VERDICTS[v] for v in result.text_verdicts],
            placeholders=result.placeholders if stage == "input" else {},
            policy=policy.name,
            deferred=result.deferred,
        )

    async def ScanInput(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan("input", request, context)

    async def ScanDeferred(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan("deferred", request, context)

    async def ScanOutput(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan("output", request, context)

    async def ScanRetrieved(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan("retrieved", request, context)

    async def ScanOutputStream(self, request_iterator, context: grpc.aio.ServicerContext):
        stream: OutputStream | None = None
        request_id, policy_name = "", ""
        started = time.perf_counter()
        try:
            async for msg in request_iterator:
                if msg.HasField("start"):
                    s = msg.start
                    policy = await self._policy("output", s.policy if s.HasField("policy") else None, context)
                    stream = OutputStream(self.engine, policy, dict(s.restore), self.settings.stream_max_hold_chars,
                                          list(s.context))
                    request_id, policy_name = s.request_id, policy.name
                    continue
                if stream is None:
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the first message must be `start`")
                d = msg.delta
                step = await self._run(stream.feed, d.index, d.text, d.final)
                yield guard_pb2.OutputStreamResponse(
                    index=d.index,
                    text=step.text,
                    verdict=_VERDICTS[step.verdict],
                    findings=[_finding(f) for f in step.findings],
                    held=step.held,
                )
        finally:
            if stream is not None:
                SCAN_SECONDS.labels("stream").observe(time.perf_counter() - started)
                verdict = "block" if any(c.blocked for c in stream.choices.values()) else (
                    "redact" if any(f.action == "redact" for f in stream.findings) else "allow")
                VERDICTS.labels("stream", verdict).inc()
                if stream.findings:
                    _log_findings("stream", request_id, policy_name, verdict, stream.findings)

    async def Moderate(self, request: guard_pb2.ModerateRequest, context: grpc.aio.ServicerContext):
        policy = await self._policy("input", request.policy if request.HasField("policy") else None, context)
        started = time.perf_counter()
        results = []
        for text in request.texts:
            scores, matches = await self._run(self.engine.moderate, text, policy)
            categories = [guard_pb2.CategoryScore(category=c, score=s, flagged=f) for c, (s, f) in scores.items()]
            results.append(
                guard_pb2.Moderation(
                    flagged=any(f for _, f in scores.values()),
                    categories=categories,
                    finding_types=sorted({m.type for m in matches}),
                )
            )
        SCAN_SECONDS.labels("moderate").observe(time.perf_counter() - started)
        return guard_pb2.ModerateResponse(results=results)


def _finding(f: Finding) -> guard_pb2.Finding:
    return guard_pb2.Finding(
        type=f.match.type,
        text_index=f.text_index,
        start=f.match.start,
        end=f.match.end,
        score=f.match.score,
        action=f.action,
    )


def _log_findings(stage: str, request_id: str, policy: str, verdict: str, findings: list[Finding]) -> None:
    # Types and counts only: the scanned text and matched values never reach the logs.
    log.info(
        "findings",
        extra={
            "f_stage": stage,
            "f_request_id": request_id,
            "f_policy": policy,
            "f_verdict": verdict,
            "f_types": sorted({f.match.type for f in findings}),
            "f_count": len(findings),
        },
    )
