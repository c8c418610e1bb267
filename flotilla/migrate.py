"""Versioned SQL migrations (``flotilla/migrations/NNNN_name.sql``), applied by ``flotilla migrate``.

Each migration runs in its own transaction under a Postgres advisory lock, so several replicas (or a
Helm hook racing a developer) apply each version exactly once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)
_LOCK_ID = 0x666C6F74  # "flot"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    out = []
    for entry in resources.files("flotilla.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    out.sort(key=lambda mig: mig.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        dupes = sorted({v for v in versions if versions.count(v) > 1})
        raise RuntimeError(f"two migrations share a version number: {dupes} — renumber one of them")
    return out


async def migrate(dsn: str) -> list[Migration]:
    """Apply every migration not yet applied; returns those applied now."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS flotilla_schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM flotilla_schema_migrations")}
        for mig in available():
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO flotilla_schema_migrations (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
            log.info("applied migration", extra={"f_version": mig.version, "f_name": mig.name})
            applied_now.append(mig)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
        finally:
            await conn.close()
    return applied_now
