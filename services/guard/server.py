"""The Guard gRPC servicer."""

from __future__ import annotations

import asyncio
import logging

import grpc

from flotilla.v1 import guard_pb2, guard_pb2_grpc
from services.guard.policy import INPUT_POLICY, OUTPUT_POLICY, Policy, ScanResult, scan_texts
from services.guard.scanners import Scanner, default_scanners
from services.guard.settings import GuardSettings

log = logging.getLogger(__name__)

_VERDICTS = {
    "allow": guard_pb2.VERDICT_ALLOW,
    "redact": guard_pb2.VERDICT_REDACT,
    "block": guard_pb2.VERDICT_BLOCK,
}


class GuardServicer(guard_pb2_grpc.GuardServicer):
    def __init__(self, settings: GuardSettings, scanners: list[Scanner] | None = None) -> None:
        self.settings = settings
        self.scanners = scanners if scanners is not None else default_scanners()

    async def _scan(self, request: guard_pb2.ScanRequest, policy: Policy) -> guard_pb2.ScanResponse:
        texts = list(request.texts)
        if sum(map(len, texts)) > self.settings.offload_chars:
            result = await asyncio.to_thread(scan_texts, texts, self.scanners, policy)
        else:
            result = scan_texts(texts, self.scanners, policy)
        if result.findings:
            # Types and spans only: the scanned text never reaches the logs.
            log.info(
                "findings",
                extra={
                    "f_request_id": request.request_id,
                    "f_verdict": result.verdict,
                    "f_types": sorted({f.match.type for f in result.findings}),
                },
            )
        return to_proto(result)

    async def ScanInput(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan(request, INPUT_POLICY)

    async def ScanOutput(self, request: guard_pb2.ScanRequest, context: grpc.aio.ServicerContext):
        return await self._scan(request, OUTPUT_POLICY)


def to_proto(result: ScanResult) -> guard_pb2.ScanResponse:
    return guard_pb2.ScanResponse(
        verdict=_VERDICTS[result.verdict],
        findings=[
            guard_pb2.Finding(
                type=f.match.type,
                text_index=f.text_index,
                start=f.match.start,
                end=f.match.end,
                score=f.match.score,
                action=f.action,
            )
            for f in result.findings
        ],
        redacted_texts=result.redacted_texts,
    )
