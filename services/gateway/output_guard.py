"""A streamed answer through the guard's bidirectional ``ScanOutputStream``.

The gateway writes each model delta as it arrives and reads back the text that is safe to emit: the
guard holds back only characters that could still start a match (a card number or key split across
deltas is redacted whole), restores placeholders of the prompt for the caller, and can block the rest
of the stream. One answer per delta keeps the two in lockstep; the call opens on the first delta.

When the guard becomes unreachable and ``skip`` says fail open, the rest of the answer passes unscanned
(what the guard was holding back at that moment — at most the start of a possible match — is lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from flotilla.v1 import guard_pb2
from services.gateway.errors import OpenAIError, from_grpc


@dataclass(frozen=True)
class Released:
    text: str
    blocked: bool
    finding_types: tuple[str, ...] = ()


class OutputGuard:
    def __init__(
        self, stub: Any, start: guard_pb2.OutputStreamStart, timeout: float,
        error: Callable[[grpc.aio.AioRpcError], OpenAIError] | None = None,
        skip: Callable[[grpc.aio.AioRpcError], bool] | None = None,
    ) -> None:
        self._stub = stub
        self._start = start
        self._timeout = timeout
        self._error = error or (lambda exc: from_grpc(exc, "guard"))
        self._skip = skip or (lambda exc: False)
        self._call: Any = None
        self.bypassed = False  # fail-open: the guard went away, the rest passes unscanned
        self.blocked_types: tuple[str, ...] = ()

    async def feed(self, index: int, text: str, final: bool = False) -> Released:
        if self.bypassed:
            return Released(text, False)
        try:
            if self._call is None:
                self._call = self._stub.ScanOutputStream(timeout=self._timeout)
                await self._call.write(guard_pb2.OutputStreamRequest(start=self._start))
            await self._call.write(
                guard_pb2.OutputStreamRequest(delta=guard_pb2.OutputDelta(index=index, text=text, final=final))
            )
            resp = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            if self._skip(exc):
                self.bypassed = True
                self.close()
                return Released(text, False)
            raise self._error(exc) from None
        if resp is grpc.aio.EOF:
            raise OpenAIError(502, "The guard ended the output scan early.", code="upstream_error")
        if resp.verdict == guard_pb2.VERDICT_BLOCK:
            self.blocked_types = tuple(sorted({f.type for f in resp.findings if f.action == "block"}))
            return Released("", True, self.blocked_types)
        return Released(resp.text, False, tuple(f.type for f in resp.findings))

    def error(self) -> OpenAIError:
        kinds = f" ({', '.join(self.blocked_types)})" if self.blocked_types else ""
        return OpenAIError(400, f"The response was stopped by the content policy{kinds}.",
                           code="content_policy_violation")

    def close(self) -> None:
        """End the scan without waiting: our side half-closes and the call is drained in the background, so the
        guard finishes it as a normal end of stream (its span, metrics and finding log complete); a call that
        does not end within a second is cancelled."""
        call, self._call = self._call, None
        if call is None:
            return
        task = asyncio.ensure_future(_finish(call))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Future[None]] = set()  # background half-closes (kept referenced until done)


async def _finish(call: Any, timeout_s: float = 1.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                pass
    except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        call.cancel()


class UnguardedOutput:
    """The output stream when the guard is turned off: every delta is released as it comes."""

    blocked_types: tuple[str, ...] = ()

    async def feed(self, index: int, text: str, final: bool = False) -> Released:
        return Released(text, False)

    def error(self) -> OpenAIError:  # never blocks
        return OpenAIError(400, "The response was stopped by the content policy.", code="content_policy_violation")

    def close(self) -> None:
        pass
