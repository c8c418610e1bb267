"""Per-key RPM and TPM limits that hold across gateway replicas, without a DB round trip per request.

Each replica leases chunks of the current minute's budget from Postgres with one atomic upsert
(``quota_windows``; in an UPDATE every right-hand side sees the row as it was, so ``last_grant`` is exactly
what this call took) and admits requests from its local lease. A lease left idle is given back, so other
replicas can use it. Tokens are reserved at admission (prompt estimate + max tokens) and settled to the
real count when the request ends: unused tokens return to the local lease; a shortfall is taken from it.
Leases never exceed the limit, so replicas can only overshoot through settlements beyond the reservation,
bounded by one request's underestimate each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import asyncpg

from services.gateway.keys import ApiKey

log = logging.getLogger(__name__)

WINDOW_S = 60

_LEASE = """
INSERT INTO quota_windows AS q (key_id, kind, window_start, used, last_grant)
VALUES ($1, $2, to_timestamp($3::bigint), LEAST($4::bigint, $5::bigint), LEAST($4::bigint, $5::bigint))
ON CONFLICT (key_id, kind, window_start) DO UPDATE
SET used = q.used + GREATEST(LEAST($4::bigint, $5::bigint - q.used), 0),
    last_grant = GREATEST(LEAST($4::bigint, $5::bigint - q.used), 0)
RETURNING last_grant, used
"""
_GIVE_BACK = """
UPDATE quota_windows SET used = GREATEST(used - $4::bigint, 0)
WHERE key_id = $1 AND kind = $2 AND window_start = to_timestamp($3::bigint)
"""


class QuotaExceeded(Exception):
    def __init__(self, kind: str, limit: int, remaining: int, reset_s: float) -> None:
        super().__init__(kind)
        self.kind, self.limit, self.remaining, self.reset_s = kind, limit, remaining, reset_s


@dataclass
class _Lease:
    window: int  # window start, epoch seconds
    available: int = 0
    global_used: int = 0  # the window's leased total after our last grant
    last_use: float = field(default_factory=time.monotonic)


@dataclass
class Reservation:
    key: ApiKey
    window: int
    tokens: int  # reserved at admission
    headers: dict[str, str] = field(default_factory=dict)


def _reset(window: int) -> float:
    return max(0.0, window + WINDOW_S - time.time())


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 else f"{int(seconds * 1000)}ms"


class QuotaManager:
    def __init__(self, pool: asyncpg.Pool | None, lease_fraction: float = 0.1, idle_return_s: float = 1.0) -> None:
        self.pool = pool
        self.lease_fraction = lease_fraction
        self.idle_return_s = idle_return_s
        self.leases: dict[tuple[str, str], _Lease] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._local: dict[tuple[str, str, int], int] = {}  # window totals when there is no database

    async def start(self) -> None:
        self._task = asyncio.create_task(self._return_idle())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for (key_id, kind), lease in list(self.leases.items()):
            await self._give_back(key_id, kind, lease)

    async def _take(self, key: ApiKey, kind: str, limit: int, need: int) -> tuple[bool, _Lease]:
        """Take ``need`` units from the local lease, leasing more from Postgres if needed."""
        window = int(time.time()) // WINDOW_S * WINDOW_S
        slot = (key.id, kind)
        lock = self.locks.setdefault(slot, asyncio.Lock())
        async with lock:
            lease = self.leases.get(slot)
            if lease is None or lease.window != window:
                lease = self.leases[slot] = _Lease(window)
            lease.last_use = time.monotonic()
            if lease.available < need:
                chunk = max(need - lease.available, math.ceil(limit * self.lease_fraction))
                try:
                    granted, lease.global_used = await self._lease(key.id, kind, window, chunk, limit)
                    lease.available += granted
                except (OSError, asyncpg.PostgresError):
                    log.warning("quota lease failed; admitting from the local lease only", extra={"f_key_id": key.id})
            if lease.available < need:
                return False, lease
            lease.available -= need
            return True, lease

    async def _lease(self, key_id: str, kind: str, window: int, chunk: int, limit: int) -> tuple[int, int]:
        """(granted, window total leased) — from Postgres, or this process alone when there is no database."""
        if self.pool is not None:
            row = await self.pool.fetchrow(_LEASE, key_id, kind, window, chunk, limit)
            return row["last_grant"], row["used"]
        slot = (key_id, kind, window)
        used = self._local.get(slot, 0)
        granted = max(min(chunk, limit - used), 0)
        self._local[slot] = used + granted
        return granted, used + granted

    def _headers(self, kind: str, limit: int, lease: _Lease, out: dict[str, str]) -> None:
        remaining = max(0, limit - lease.global_used + lease.available)
        out[f"x-ratelimit-limit-{kind}"] = str(limit)
        out[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        out[f"x-ratelimit-reset-{kind}"] = _fmt(_reset(lease.window))

    async def admit(self, key: ApiKey, estimated_tokens: int) -> Reservation:
        """Admit one request reserving ``estimated_tokens``, or raise :class:`QuotaExceeded`."""
        window = int(time.time()) // WINDOW_S * WINDOW_S
        res = Reservation(key, window, 0)
        if key.max_budget_tokens is not None and key.spent_tokens >= key.max_budget_tokens:
            raise QuotaExceeded("budget", key.max_budget_tokens, 0, 0)
        if key.rpm is not None:
            ok, lease = await self._take(key, "requests", key.rpm, 1)
            self._headers("requests", key.rpm, lease, res.headers)
            if not ok:
                raise QuotaExceeded("requests", key.rpm, 0, _reset(lease.window))
        if key.tpm is not None:
            need = min(estimated_tokens, key.tpm)  # a request larger than the whole limit still gets a chance
            ok, lease = await self._take(key, "tokens", key.tpm, need)
            self._headers("tokens", key.tpm, lease, res.headers)
            if not ok:
                if key.rpm is not None:  # give the request slot back
                    self.leases[(key.id, "requests")].available += 1
                raise QuotaExceeded("tokens", key.tpm, lease.available, _reset(lease.window))
            res.tokens = need
        return res

    def settle(self, res: Reservation, actual_tokens: int) -> None:
        """The request ended having used ``actual_tokens``: adjust the local token lease."""
        if res.key.tpm is None:
            return
        lease = self.leases.get((res.key.id, "tokens"))
        if lease is not None and lease.window == res.window:
            lease.available += res.tokens - actual_tokens  # may go negative: the next admission leases more

    async def _give_back(self, key_id: str, kind: str, lease: _Lease) -> None:
        if lease.available <= 0 or self.pool is None:
            return
        amount, lease.available = lease.available, 0
        try:
            await self.pool.execute(_GIVE_BACK, key_id, kind, lease.window, amount)
        except (OSError, asyncpg.PostgresError):
            lease.available += amount

    async def _return_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_return_s / 2)
            now = time.monotonic()
            for (key_id, kind), lease in list(self.leases.items()):
                lock = self.locks[(key_id, kind)]
                if now - lease.last_use >= self.idle_return_s and lease.available > 0 and not lock.locked():
                    async with lock:
                        await self._give_back(key_id, kind, lease)
