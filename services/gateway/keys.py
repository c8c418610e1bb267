"""API keys: creation (shown once), hashed storage, and the in-memory cache every replica serves from.

A key looks like ``fl-<id>.<secret>``. Only ``sha256(key)`` is stored; ``<id>`` finds the row in O(1).
The cache holds every active key, so the request path does no database round trip. A trigger NOTIFYs
``flotilla_keys`` on every change; each replica LISTENs and reloads that key at once (revocation takes
effect everywhere within a second), and also reloads everything every ``reload_s`` as a safety net.
While Postgres is unreachable the cache keeps serving the keys it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flotilla.guardpolicy import parse_policy

log = logging.getLogger(__name__)

PREFIX = "fl-"
CHANNEL = "flotilla_keys"
_COLUMNS = (
    "id, name, tenant_id, secret_sha256, models, rpm, tpm, max_budget_tokens, spent_tokens, created_at, revoked_at, "
    "guard_policy"
)
GUARD_STAGES = ("input", "output", "retrieved")


def validate_guard_policy(policy: dict[str, str] | None) -> dict[str, str] | None:
    """A key's guard policy: stage → one-line policy (``"pii=block, injection=block:0.6"``); empty stages are
    dropped. Raises ``ValueError`` (a ``PolicyError`` for a bad rule) naming what is wrong."""
    if not policy:
        return None
    out: dict[str, str] = {}
    for stage, spec in policy.items():
        if stage not in GUARD_STAGES:
            raise ValueError(f"unknown guard stage {stage!r} (known: {', '.join(GUARD_STAGES)})")
        if spec and spec.strip():
            parse_policy(spec)
            out[stage] = spec.strip()
    return out or None


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant_id: str
    secret_sha256: bytes
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_budget_tokens: int | None
    spent_tokens: int
    created_at: datetime
    revoked_at: datetime | None
    guard_policy: tuple[tuple[str, str], ...] = ()  # (stage, one-line policy); empty: the gateway's policies

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(
            id=row["id"], name=row["name"], tenant_id=row["tenant_id"], secret_sha256=bytes(row["secret_sha256"]),
            models=tuple(row["models"]) if row["models"] is not None else None, rpm=row["rpm"], tpm=row["tpm"],
            max_budget_tokens=row["max_budget_tokens"], spent_tokens=row["spent_tokens"],
            created_at=row["created_at"], revoked_at=row["revoked_at"],
            guard_policy=tuple(sorted(json.loads(row["guard_policy"]).items())) if row["guard_policy"] else (),
        )

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict[str, Any]:
        """What listings show: never the secret or its hash."""
        return {
            "id": self.id, "name": self.name, "tenant_id": self.tenant_id,
            "models": list(self.models) if self.models is not None else None, "rpm": self.rpm, "tpm": self.tpm,
            "max_budget_tokens": self.max_budget_tokens, "spent_tokens": self.spent_tokens,
            "created_at": self.created_at.isoformat(), "revoked": self.revoked_at is not None,
            "guard_policy": dict(self.guard_policy) or None,
        }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    if not key.startswith(PREFIX) or "." not in key:
        return None
    key_id = key[len(PREFIX) :].split(".", 1)[0]
    return key_id if key_id.isalnum() else None


# -- management (CLI and admin API) -----------------------------------------------------------------


async def create_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    *,
    tenant_id: str | None = None,
    models: list[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    max_budget_tokens: int | None = None,
    guard_policy: dict[str, str] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the record and the key itself, which is never retrievable again."""
    policy = validate_guard_policy(guard_policy)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = f"{PREFIX}{key_id}.{secret}"
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO api_keys (id, name, tenant_id, secret_sha256, models, rpm, tpm, max_budget_tokens,
                                      guard_policy)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING {_COLUMNS}""",
            key_id, name, tenant_id or name, _digest(key), models, rpm, tpm, max_budget_tokens,
            json.dumps(policy) if policy else None,
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"a key named {name!r} already exists") from None
    return ApiKey.from_row(row), key


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool, include_revoked: bool = False) -> list[ApiKey]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at")
    return [ApiKey.from_row(r) for r in rows]


async def set_guard_policy(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, policy: dict[str, str] | None
) -> ApiKey | None:
    """Replace an active key's guard policy (None or {}: the gateway's policies); every gateway replica
    picks it up within a second (NOTIFY). Returns the updated key, None when there is no such active key."""
    checked = validate_guard_policy(policy)
    row = await conn.fetchrow(
        f"UPDATE api_keys SET guard_policy = $2::jsonb WHERE name = $1 AND revoked_at IS NULL RETURNING {_COLUMNS}",
        name, json.dumps(checked) if checked else None,
    )
    return ApiKey.from_row(row) if row is not None else None


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    status = await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name)
    return status.endswith(" 1")


# -- the cache on the request path --------------------------------------------------------------------


class KeyCache:
    def __init__(self, pool: asyncpg.Pool | None, dsn: str | None, reload_s: float = 30.0) -> None:
        self.pool = pool
        self.dsn = dsn
        self.reload_s = reload_s
        self.keys: dict[str, ApiKey] = {}
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    def authenticate(self, presented: str) -> ApiKey | None:
        key_id = parse(presented)
        if key_id is None:
            return None
        record = self.keys.get(key_id)
        if record is None or record.revoked_at is not None:
            return None
        return record if hmac.compare_digest(record.secret_sha256, _digest(presented)) else None

    async def start(self) -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self.reload_all()
        self._task = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_listener()

    async def reload_all(self) -> None:
        assert self.pool is not None
        rows = await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL")
        self.keys = {r["id"]: ApiKey.from_row(r) for r in rows}
        self.loaded.set()

    async def reload_one(self, key_id: str) -> None:
        assert self.pool is not None
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        if row is None or row["revoked_at"] is not None:
            self.keys.pop(key_id, None)
        else:
            self.keys[key_id] = ApiKey.from_row(row)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        asyncio.get_running_loop().create_task(self._safe_reload_one(payload))

    async def _safe_reload_one(self, key_id: str) -> None:
        try:
            await self.reload_one(key_id)
        except (OSError, asyncpg.PostgresError):
            log.warning("key reload failed; keeping the cached copy", extra={"f_key_id": key_id})

    async def _drop_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def _maintain(self) -> None:
        """Keep a LISTEN connection open (re-opening it after outages) and reload everything periodically."""
        last_full = asyncio.get_running_loop().time()
        while True:
            try:
                if self._listener is None or self._listener.is_closed():
                    await self._drop_listener()
                    self._listener = await asyncpg.connect(self.dsn, timeout=5)
                    await self._listener.add_listener(CHANNEL, self._on_notify)
                    await self.reload_all()  # whatever changed while we were not listening
                    last_full = asyncio.get_running_loop().time()
                elif asyncio.get_running_loop().time() - last_full > self.reload_s:
                    await self.reload_all()
                    last_full = asyncio.get_running_loop().time()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                await self._drop_listener()
            await asyncio.sleep(0.5)
