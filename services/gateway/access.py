"""Who may call, how much, and what they used: API keys, quotas and the usage ledger on the request path.

``Access`` owns the gateway's Postgres pool. Routes call :meth:`Access.authenticate` (401/403/404),
:meth:`Access.admit` (429 with OpenAI's rate-limit headers) and, when the request ends — normally, with an
error, or because the client went away — :meth:`Access.finish`, which settles the token reservation and
queues the ledger row.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Request

from flotilla.settings import flotilla_home
from services.gateway import metrics, tracing
from services.gateway.errors import OpenAIError
from services.gateway.keys import ApiKey, KeyCache
from services.gateway.ledger import Ledger, UsageRow
from services.gateway.protocol import UsageInfo
from services.gateway.quotas import QuotaExceeded, QuotaManager, Reservation
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


@dataclass
class Accounting:
    """One request's facts for the ledger, filled in as it runs."""

    key: ApiKey
    endpoint: str
    model: str
    request_id: str
    id: str = ""
    reservation: Reservation | None = None
    started: float = field(default_factory=time.perf_counter)
    ttft_s: float | None = None
    usage: UsageInfo = field(default_factory=UsageInfo)
    status: int = 200
    finish_reason: str | None = None
    guard_verdict: str | None = None
    guard_findings: list[str] = field(default_factory=list)
    done: bool = False
    guard: Any = None  # the request's GuardSession: its verdict and finding types go to the ledger
    span: Any = None  # the request's trace span while tracing is on

    def record_scan(self, scan: Any) -> None:
        """Keep the guard's verdict on the output and the finding types (never the text)."""
        verdict = {1: "allow", 2: "redact", 3: "block"}.get(int(scan.verdict))
        if verdict and (self.guard_verdict is None or verdict != "allow"):
            self.guard_verdict = verdict
        self.guard_findings.extend(f.type for f in scan.findings)

    def first_token(self) -> None:
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started


def estimate_prompt_tokens(texts: list[str]) -> int:
    """A deliberately generous estimate (≈3 characters a token, plus chat-template overhead)."""
    return sum(math.ceil(len(t) / 3) + 8 for t in texts)


class Access:
    def __init__(self, settings: GatewaySettings, pool: asyncpg.Pool | None) -> None:
        self.settings = settings
        self.pool = pool
        self.keys = KeyCache(pool, settings.database_url)
        self.quotas = QuotaManager(pool, settings.quota_lease_fraction)
        spool = settings.ledger_spool or flotilla_home() / "ledger-spool" / f"gateway-{settings.port}.jsonl"
        self.ledger = Ledger(pool, Path(spool), settings.ledger_flush_s)

    @classmethod
    async def connect(cls, settings: GatewaySettings) -> Access:
        pool = None
        if settings.database_url:
            try:
                pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=settings.db_pool_size,
                                                 timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                # Start anyway: the key cache and the ledger keep retrying; requests get 401 until keys load.
                log.error("database unreachable at start", extra={"f_error": type(exc).__name__})
                pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=settings.db_pool_size)
        access = cls(settings, pool)
        await access.start()
        return access

    async def start(self) -> None:
        await self.keys.start()
        await self.quotas.start()
        await self.ledger.start()

    async def close(self) -> None:
        await self.quotas.close()
        await self.ledger.close()
        await self.keys.close()
        if self.pool is not None:
            await self.pool.close()

    # -- the request path ----------------------------------------------------------------------------

    def authenticate(self, request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise OpenAIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                              type="invalid_request_error", code="invalid_api_key")
        key = self.keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            shown = token.strip()[:6] + "…" if token else ""
            raise OpenAIError(401, f"Incorrect API key provided: {shown}.", type="invalid_request_error",
                              code="invalid_api_key")
        request.state.api_key = key
        request.state.tenant_id = key.tenant_id
        return key

    @staticmethod
    def check_model(key: ApiKey, model: str) -> None:
        if not key.allows(model):  # as OpenAI: a model you may not use looks like one that does not exist
            raise OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                              param="model", code="model_not_found")

    async def admit(self, acct: Accounting, estimated_tokens: int) -> None:
        try:
            acct.reservation = await self.quotas.admit(acct.key, estimated_tokens)
        except QuotaExceeded as exc:
            acct.status = 429
            metrics.QUOTA_REJECTIONS.labels(acct.key.id, exc.kind).inc()
            headers = {"retry-after": str(max(1, math.ceil(exc.reset_s)))}
            if exc.kind == "budget":
                raise OpenAIError(429, "You exceeded the token budget of this API key.", type="insufficient_quota",
                                  code="insufficient_quota") from None
            headers.update({
                f"x-ratelimit-limit-{exc.kind}": str(exc.limit),
                f"x-ratelimit-remaining-{exc.kind}": str(max(exc.remaining, 0)),
                f"x-ratelimit-reset-{exc.kind}": f"{exc.reset_s:.0f}s",
            })
            unit = "requests" if exc.kind == "requests" else "tokens"
            raise OpenAIError(
                429, f"Rate limit reached for {acct.model} on {unit} per min (RPM/TPM): Limit {exc.limit}. "
                f"Please try again in {exc.reset_s:.0f}s.", type="requests" if exc.kind == "requests" else "tokens",
                code="rate_limit_exceeded", headers=headers,
            ) from None

    def finish(self, acct: Accounting) -> None:
        """Settle the reservation and queue the ledger row (idempotent)."""
        if acct.done:
            return
        acct.done = True
        if acct.reservation is not None:
            self.quotas.settle(acct.reservation, acct.usage.prompt_tokens + acct.usage.completion_tokens)
        if not acct.id:
            return  # refused before anything ran: nothing to bill
        metrics.observe_usage(acct.model, acct.key.id, acct.usage.prompt_tokens, acct.usage.completion_tokens,
                              acct.ttft_s)
        tracing.finish(acct)
        if acct.guard is not None:
            rank = {None: -1, "allow": 0, "redact": 1, "block": 2}
            if rank.get(acct.guard.verdict, -1) > rank.get(acct.guard_verdict, -1):
                acct.guard_verdict = acct.guard.verdict
            acct.guard_findings.extend(acct.guard.finding_types)
        self.ledger.record(UsageRow(
            id=acct.id, request_id=acct.request_id, key_id=acct.key.id, tenant_id=acct.key.tenant_id,
            endpoint=acct.endpoint, model=acct.model, prompt_tokens=acct.usage.prompt_tokens,
            completion_tokens=acct.usage.completion_tokens,
            ttft_ms=acct.ttft_s * 1000 if acct.ttft_s is not None else None,
            latency_ms=(time.perf_counter() - acct.started) * 1000, status=acct.status,
            finish_reason=acct.finish_reason, guard_verdict=acct.guard_verdict,
            guard_findings=sorted(set(acct.guard_findings)),
        ))
