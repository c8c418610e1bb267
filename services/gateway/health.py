"""Liveness and readiness of the gateway: ``GET /healthz`` and ``GET /readyz``.

``/healthz`` answers 200 while the process serves HTTP. ``/readyz`` answers 200 only when the gateway can do
its work: at least one inference replica serves a model, the guard and RAG answer ``SERVING`` on
``grpc.health.v1`` over mTLS, and Postgres (when configured) answers — or, once the API keys have been
loaded, Postgres may be down (``DEGRADED``: cached keys keep authenticating, the ledger spools); so may the
guard or RAG when the gateway is set to fail open without them (``DEGRADED``), and a guard turned off in
settings is ``DISABLED``. Otherwise
503 with the state of each upstream. The probe result is cached for ``ready_cache_s`` seconds and concurrent
probes share one check, so frequent probes stay cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SERVING = "SERVING"
OK_STATES = frozenset({SERVING, "DEGRADED", "DISABLED"})


class Readiness:
    def __init__(
        self, upstreams: Any, access: Any, cache_s: float = 2.0, db_timeout_s: float = 1.0,
        disabled: frozenset[str] = frozenset(), fail_open: frozenset[str] = frozenset(),
    ) -> None:
        self.upstreams = upstreams
        self.disabled = disabled  # upstreams turned off in settings (the guard): not needed to be ready
        self.fail_open = fail_open  # upstreams the gateway serves without (guard/RAG fail-open): DEGRADED if down
        self.access = access
        self.cache_s = cache_s
        self.db_timeout_s = db_timeout_s
        self._result: tuple[bool, dict[str, Any]] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): cached for ``cache_s``; one check at a time."""
        if self._result is not None and time.monotonic() - self._at < self.cache_s:
            return self._result
        async with self._lock:
            if self._result is not None and time.monotonic() - self._at < self.cache_s:
                return self._result
            self._result = await self._probe()
            self._at = time.monotonic()
            return self._result

    async def _probe(self) -> tuple[bool, dict[str, Any]]:
        statuses, database = await asyncio.gather(self.upstreams.check(), self._database())
        upstreams: dict[str, Any] = dict(statuses)
        upstreams["postgres"] = database
        for name in self.fail_open:
            if upstreams.get(name) not in OK_STATES:
                upstreams[name] = "DEGRADED"
        for name in self.disabled:
            upstreams[name] = "DISABLED"
        replicas = self.upstreams.inference.healthy()
        ready = all(state in OK_STATES for state in upstreams.values())
        if not ready:
            log.warning("not ready", extra={"f_upstreams": upstreams})
        return ready, {"ready": ready, "upstreams": upstreams, "inference_replicas": replicas}

    async def _database(self) -> str:
        pool = getattr(self.access, "pool", None)
        if pool is None:
            return "DISABLED"
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), self.db_timeout_s)
            return SERVING
        except Exception as exc:  # unreachable, refused, timed out, pool closing
            keys = getattr(self.access, "keys", None)
            loaded = keys is not None and keys.loaded.is_set() and bool(keys.keys)
            log.info("postgres unreachable", extra={"f_error": type(exc).__name__, "f_keys_cached": loaded})
            return "DEGRADED" if loaded else "UNAVAILABLE"
