"""The guard server's thread pools: ScanDeferred's MiniLM work never holds up the scans a request waits on."""

from __future__ import annotations

import asyncio
import threading

from flotilla.v1 import guard_pb2
from services.guard.engine import ScanResult
from services.guard.server import GuardServicer
from services.guard.settings import GuardSettings


class FakeEngine:
    """A unit-test fake of :class:`services.guard.engine.Engine`: ``scan`` answers at once, ``scan_deferred``
    blocks until the test releases it (a long MiniLM pass)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.deferred_started = threading.Event()

    def scan(self, texts, policy, restore, roles, context, defer=False) -> ScanResult:
        return ScanResult("allow", [], None, ["allow"] * len(texts))

    def scan_deferred(self, texts, policy) -> ScanResult:
        self.deferred_started.set()
        assert self.release.wait(10)
        return ScanResult("allow", [], None, ["allow"] * len(texts))


async def test_input_scans_do_not_queue_behind_deferred_ones() -> None:
    engine = FakeEngine()
    servicer = GuardServicer(GuardSettings(scan_workers=1, metrics_port=0), engine=engine)  # type: ignore[arg-type]
    try:
        request = guard_pb2.ScanRequest(texts=["What is the capital of France?"])
        deferred = asyncio.create_task(servicer.ScanDeferred(request, None))  # type: ignore[arg-type]
        assert await asyncio.to_thread(engine.deferred_started.wait, 5)
        # The only scan worker would be busy if ScanDeferred ran in the scan pool.
        resp = await asyncio.wait_for(servicer.ScanInput(request, None), 5)  # type: ignore[arg-type]
        assert resp.verdict == guard_pb2.VERDICT_ALLOW and not deferred.done()
        engine.release.set()
        assert (await deferred).verdict == guard_pb2.VERDICT_ALLOW
    finally:
        engine.release.set()
        servicer.close()
