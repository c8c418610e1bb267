"""Files, vector stores and their attachments in Postgres (``flotilla/migrations/0002_*``).

Every query is scoped to a tenant. Lists page OpenAI's way: ``limit`` (1–100), ``order`` by creation
time, ``after``/``before`` an object id. Deleting a file or a store (or detaching a file) removes its
chunks in the same transaction, after taking the attachment's row lock so that an ingestion committing
concurrently cannot leave chunks behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg


class NotFound(LookupError):
    pass


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def new_store_id() -> str:
    return f"vs_{secrets.token_hex(12)}"


def ts(value: dt.datetime | None) -> int:
    return int(value.timestamp()) if value else 0


@dataclass(frozen=True)
class Page:
    rows: list[asyncpg.Record]
    has_more: bool


async def _page(
    conn: asyncpg.Pool | asyncpg.Connection,
    table: str,
    select: str,
    where: list[str],
    params: list[Any],
    id_col: str,
    limit: int,
    order: str,
    after: str,
    before: str,
    scope: str = "",
) -> Page:
    """Keyset pagination on (created_at, id) of ``table`` (aliased ``t``); ``scope`` narrows the cursor
    look-up (SQL over ``$1``/``$2``) where ids are not unique in the table."""
    limit = min(max(limit or 20, 1), 100)
    desc = order != "asc"
    for cursor, forward in ((after, True), (before, False)):
        if not cursor:
            continue
        params.append(cursor)
        newer = forward != desc  # asc+after or desc+before: rows created after the cursor
        cmp = ">" if newer else "<"
        where.append(
            f"(t.created_at, t.{id_col}) {cmp} (SELECT created_at, {id_col} FROM {table} "
            f"WHERE {id_col} = ${len(params)} AND tenant_id = $1{scope} LIMIT 1)"
        )
    reverse = bool(before) and not after  # fetch towards the cursor, then flip back
    direction = "DESC" if desc != reverse else "ASC"
    params.append(limit + 1)
    rows = await conn.fetch(
        f"{select} WHERE {' AND '.join(where)} ORDER BY t.created_at {direction}, t.{id_col} {direction} "
        f"LIMIT ${len(params)}",
        *params,
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if reverse:
        rows.reverse()
    return Page(rows, has_more)


# -- files ---------------------------------------------------------------------------------------------


async def insert_file(
    pool: asyncpg.Pool, tenant: str, filename: str, purpose: str, content_type: str, fmt: str, content: bytes,
    text: str,
) -> asyncpg.Record:
    return await pool.fetchrow(
        """INSERT INTO rag_files (id, tenant_id, filename, purpose, content_type, format, bytes, sha256, content, text)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           RETURNING id, filename, purpose, bytes, created_at, content_type, format""",
        new_file_id(), tenant, filename, purpose, content_type, fmt, len(content),
        hashlib.sha256(content).hexdigest(), content, text,
    )


_FILE_COLS = "t.id, t.filename, t.purpose, t.bytes, t.created_at, t.content_type, t.format"


async def get_file(pool: asyncpg.Pool, tenant: str, file_id: str, content: bool = False) -> asyncpg.Record:
    cols = _FILE_COLS + (", t.content" if content else "")
    row = await pool.fetchrow(f"SELECT {cols} FROM rag_files t WHERE t.tenant_id = $1 AND t.id = $2", tenant, file_id)
    if row is None:
        raise NotFound(f"No such File object: {file_id}")
    return row


async def list_files(
    pool: asyncpg.Pool, tenant: str, limit: int, order: str, after: str, before: str, purpose: str
) -> Page:
    where, params = ["t.tenant_id = $1"], [tenant]
    if purpose:
        params.append(purpose)
        where.append(f"t.purpose = ${len(params)}")
    return await _page(pool, "rag_files", f"SELECT {_FILE_COLS} FROM rag_files t", where, params, "id",
                       limit, order, after, before)


async def delete_file(pool: asyncpg.Pool, tenant: str, file_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        # Lock the attachments first (an ingestion committing holds them), then drop chunks and the file.
        await conn.execute("SELECT 1 FROM rag_vector_store_files WHERE file_id = $1 AND tenant_id = $2 FOR UPDATE",
                           file_id, tenant)
        deleted = await conn.fetchval("DELETE FROM rag_files WHERE tenant_id = $1 AND id = $2 RETURNING id",
                                      tenant, file_id)
        if deleted is None:
            raise NotFound(f"No such File object: {file_id}")
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = $1 AND file_id = $2", tenant, file_id)


# -- vector stores -------------------------------------------------------------------------------------

_STORE_SELECT = """
SELECT t.id, t.name, t.metadata::text AS metadata, t.expires_after_days, t.created_at, t.last_active_at,
       COALESCE(c.in_progress, 0) AS in_progress, COALESCE(c.completed, 0) AS completed,
       COALESCE(c.failed, 0) AS failed, COALESCE(c.cancelled, 0) AS cancelled,
       COALESCE(c.usage_bytes, 0) AS usage_bytes
FROM rag_vector_stores t
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           sum(usage_bytes)::bigint AS usage_bytes
    FROM rag_vector_store_files f WHERE f.vector_store_id = t.id
) c ON true"""


async def create_store(
    pool: asyncpg.Pool, tenant: str, name: str, metadata: dict[str, Any], expires_after_days: int | None
) -> str:
    return await pool.fetchval(
        "INSERT INTO rag_vector_stores (id, tenant_id, name, metadata, expires_after_days) "
        "VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id",
        new_store_id(), tenant, name, json.dumps(metadata), expires_after_days,
    )


async def get_store(pool: asyncpg.Pool | asyncpg.Connection, tenant: str, store_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(f"{_STORE_SELECT} WHERE t.tenant_id = $1 AND t.id = $2", tenant, store_id)
    if row is None:
        raise NotFound(f"No such vector store: {store_id}")
    return row


async def list_stores(pool: asyncpg.Pool, tenant: str, limit: int, order: str, after: str, before: str) -> Page:
    return await _page(pool, "rag_vector_stores", _STORE_SELECT, ["t.tenant_id = $1"], [tenant], "id",
                       limit, order, after, before)


async def update_store(
    pool: asyncpg.Pool, tenant: str, store_id: str, name: str | None, metadata: dict[str, Any] | None,
    expires_after_days: int | None, set_expiry: bool,
) -> None:
    done = await pool.fetchval(
        """UPDATE rag_vector_stores SET name = COALESCE($3, name), metadata = COALESCE($4::jsonb, metadata),
                  expires_after_days = CASE WHEN $6 THEN $5 ELSE expires_after_days END, last_active_at = now()
           WHERE tenant_id = $1 AND id = $2 RETURNING id""",
        tenant, store_id, name, None if metadata is None else json.dumps(metadata), expires_after_days, set_expiry,
    )
    if done is None:
        raise NotFound(f"No such vector store: {store_id}")


async def delete_store(pool: asyncpg.Pool, tenant: str, store_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM rag_vector_store_files WHERE vector_store_id = $1 AND tenant_id = $2 "
                           "FOR UPDATE", store_id, tenant)
        deleted = await conn.fetchval("DELETE FROM rag_vector_stores WHERE tenant_id = $1 AND id = $2 RETURNING id",
                                      tenant, store_id)
        if deleted is None:
            raise NotFound(f"No such vector store: {store_id}")
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id = $2", tenant, store_id)


async def touch_stores(pool: asyncpg.Pool, tenant: str, store_ids: list[str]) -> set[str]:
    """Mark the stores active (their expiry anchor); returns the ids that exist for the tenant."""
    rows = await pool.fetch(
        "UPDATE rag_vector_stores SET last_active_at = now() WHERE tenant_id = $1 AND id = ANY($2::text[]) "
        "RETURNING id",
        tenant, store_ids,
    )
    return {r["id"] for r in rows}


# -- attachments ---------------------------------------------------------------------------------------

_VSF_SELECT = """
SELECT t.vector_store_id, t.file_id, t.status, t.last_error_code, t.last_error_message,
       t.attributes::text AS attributes,
       t.max_chunk_tokens, t.chunk_overlap_tokens, t.usage_bytes, t.chunks, t.created_at, f.filename
FROM rag_vector_store_files t JOIN rag_files f ON f.id = t.file_id"""


async def attach(
    pool: asyncpg.Pool, tenant: str, store_id: str, file_id: str, attributes: dict[str, Any] | None,
    max_tokens: int, overlap: int,
) -> asyncpg.Record:
    """Attach or re-attach (a new ingestion generation, replacing the chunks when it completes)."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM rag_vector_stores WHERE tenant_id = $1 AND id = $2", tenant,
                               store_id) is None:
            raise NotFound(f"No such vector store: {store_id}")
        if await conn.fetchval("SELECT 1 FROM rag_files WHERE tenant_id = $1 AND id = $2", tenant, file_id) is None:
            raise NotFound(f"No such File object: {file_id}")
        await conn.execute(
            """INSERT INTO rag_vector_store_files
                   (vector_store_id, file_id, tenant_id, status, attributes, max_chunk_tokens, chunk_overlap_tokens)
               VALUES ($1, $2, $3, 'in_progress', COALESCE($4::jsonb, '{}'), $5, $6)
               ON CONFLICT (vector_store_id, file_id) DO UPDATE SET
                   status = 'in_progress', last_error_code = NULL, last_error_message = NULL,
                   attributes = COALESCE($4::jsonb, rag_vector_store_files.attributes),
                   max_chunk_tokens = $5, chunk_overlap_tokens = $6,
                   generation = rag_vector_store_files.generation + 1, lease_until = NULL, updated_at = now()""",
            store_id, file_id, tenant, None if attributes is None else json.dumps(attributes), max_tokens, overlap,
        )
        await conn.execute("UPDATE rag_vector_stores SET last_active_at = now() WHERE id = $1", store_id)
        return await conn.fetchrow(f"{_VSF_SELECT} WHERE t.vector_store_id = $1 AND t.file_id = $2", store_id,
                                   file_id)


async def get_attachment(pool: asyncpg.Pool, tenant: str, store_id: str, file_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        f"{_VSF_SELECT} WHERE t.tenant_id = $1 AND t.vector_store_id = $2 AND t.file_id = $3",
        tenant, store_id, file_id,
    )
    if row is None:
        raise NotFound(f"No file {file_id} in vector store {store_id}")
    return row


async def list_attachments(
    pool: asyncpg.Pool, tenant: str, store_id: str, status: str, limit: int, order: str, after: str, before: str
) -> Page:
    if await pool.fetchval("SELECT 1 FROM rag_vector_stores WHERE tenant_id = $1 AND id = $2", tenant,
                           store_id) is None:
        raise NotFound(f"No such vector store: {store_id}")
    where, params = ["t.tenant_id = $1", "t.vector_store_id = $2"], [tenant, store_id]
    if status:
        params.append(status)
        where.append(f"t.status = ${len(params)}")
    return await _page(pool, "rag_vector_store_files", _VSF_SELECT, where, params, "file_id",
                       limit, order, after, before, scope=" AND vector_store_id = $2")


async def detach(pool: asyncpg.Pool, tenant: str, store_id: str, file_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(
            "DELETE FROM rag_vector_store_files WHERE tenant_id = $1 AND vector_store_id = $2 AND file_id = $3 "
            "RETURNING file_id",
            tenant, store_id, file_id,
        )
        if deleted is None:
            raise NotFound(f"No file {file_id} in vector store {store_id}")
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id = $2 AND file_id = $3",
                           tenant, store_id, file_id)
