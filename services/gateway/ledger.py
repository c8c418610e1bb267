"""The usage ledger: one row per request, written in batches off the request path, exactly once.

Rows go to an in-memory queue; a writer flushes them every ``flush_s`` (or ``batch`` rows) with
``INSERT … ON CONFLICT (id) DO NOTHING`` and adds the tokens to each key's ``spent_tokens``. When Postgres
cannot be reached the batch is appended (fsynced) to a local spool file instead, and replayed once
Postgres answers again; the unique id makes replays harmless, so every request is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_INSERT = """
INSERT INTO usage_ledger (id, request_id, key_id, tenant_id, endpoint, model, prompt_tokens, completion_tokens,
                          ttft_ms, latency_ms, status, finish_reason, guard_verdict, guard_findings, created_at)
SELECT id, request_id, key_id, tenant_id, endpoint, model, prompt_tokens, completion_tokens, ttft_ms, latency_ms,
       status, finish_reason, guard_verdict, guard_findings::text[], created_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
                     $8::int[], $9::real[], $10::real[], $11::int[], $12::text[], $13::text[], $14::text[],
                     $15::timestamptz[])
         AS t(id, request_id, key_id, tenant_id, endpoint, model, prompt_tokens, completion_tokens, ttft_ms,
              latency_ms, status, finish_reason, guard_verdict, guard_findings, created_at)
ON CONFLICT (id) DO NOTHING
RETURNING key_id, prompt_tokens + completion_tokens AS tokens
"""


@dataclass
class UsageRow:
    id: str
    request_id: str
    key_id: str
    tenant_id: str
    endpoint: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    status: int
    ttft_ms: float | None = None
    finish_reason: str | None = None
    guard_verdict: str | None = None
    guard_findings: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class Ledger:
    def __init__(self, pool: asyncpg.Pool | None, spool: Path, flush_s: float = 0.5, batch: int = 500) -> None:
        self.pool = pool
        self.spool = spool
        self.flush_s = flush_s
        self.batch = batch
        self.queue: list[UsageRow] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.spooled = 0  # rows currently waiting in the spool file

    def record(self, row: UsageRow) -> None:
        """Non-blocking: the row is written by the background writer."""
        self.queue.append(row)
        if len(self.queue) >= self.batch:
            self._wake.set()

    async def start(self) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        if self.spool.exists():
            self.spooled = sum(1 for _ in self.spool.open())
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if self.spooled:
            await self._replay()
        rows, self.queue = self.queue, []
        if not rows:
            return
        if self.spooled or not await self._insert(rows):  # keep order: while anything is spooled, spool too
            await asyncio.to_thread(self._append_spool, rows)

    async def _insert(self, rows: list[UsageRow]) -> bool:
        if self.pool is None:
            return False
        cols = list(zip(*[_values(r) for r in rows], strict=True))
        try:
            async with self.pool.acquire(timeout=2) as conn, conn.transaction():
                inserted = await conn.fetch(_INSERT, *cols)
                spent: dict[str, int] = {}
                for rec in inserted:
                    spent[rec["key_id"]] = spent.get(rec["key_id"], 0) + rec["tokens"]
                if spent:
                    await conn.executemany(
                        "UPDATE api_keys SET spent_tokens = spent_tokens + $2 WHERE id = $1", list(spent.items())
                    )
            return True
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as exc:
            log.warning("ledger write failed; spooling", extra={"f_rows": len(rows), "f_error": type(exc).__name__})
            return False

    def _append_spool(self, rows: list[UsageRow]) -> None:
        with self.spool.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(asdict(row)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.spooled += len(rows)

    async def _replay(self) -> None:
        lines = await asyncio.to_thread(self.spool.read_text)
        rows = [UsageRow(**json.loads(line)) for line in lines.splitlines() if line.strip()]
        for start in range(0, len(rows), self.batch):
            if not await self._insert(rows[start : start + self.batch]):
                return  # still down: keep the spool as it is (replays are idempotent)
        await asyncio.to_thread(self.spool.unlink, True)
        log.info("ledger spool replayed", extra={"f_rows": len(rows)})
        self.spooled = 0


def _values(r: UsageRow) -> tuple:
    return (
        r.id, r.request_id, r.key_id, r.tenant_id, r.endpoint, r.model, r.prompt_tokens, r.completion_tokens,
        r.ttft_ms, r.latency_ms, r.status, r.finish_reason, r.guard_verdict, "{" + ",".join(
            json.dumps(f) for f in r.guard_findings) + "}", datetime.fromisoformat(r.created_at),
    )


async def usage_totals(conn: asyncpg.Pool | asyncpg.Connection, key_name: str | None = None,
                       since: datetime | None = None) -> list[dict]:
    """Requests and tokens per key (and model) from the ledger; for ``flotilla usage`` and ``/admin/usage``."""
    rows = await conn.fetch(
        """SELECT k.name AS key, u.model, count(*) AS requests,
                  sum(u.prompt_tokens) AS prompt_tokens, sum(u.completion_tokens) AS completion_tokens,
                  sum(CASE WHEN u.status >= 400 THEN 1 ELSE 0 END) AS errors
           FROM usage_ledger u JOIN api_keys k ON k.id = u.key_id
           WHERE ($1::text IS NULL OR k.name = $1) AND ($2::timestamptz IS NULL OR u.created_at >= $2)
           GROUP BY k.name, u.model ORDER BY k.name, u.model""",
        key_name, since,
    )
    return [
        {**dict(r), "total_tokens": int(r["prompt_tokens"]) + int(r["completion_tokens"])} for r in rows
    ]
