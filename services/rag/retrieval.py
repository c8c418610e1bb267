"""Hybrid retrieval over ``rag_chunks``: a vector ranking (pgvector HNSW, cosine) and a full-text ranking
(``ts_rank_cd`` over any of the query's lexemes) fused with reciprocal rank fusion.

The two lists are two statements run concurrently on two pooled connections (with a 2-core database the
search costs about the slower list, not their sum); both are scoped to the tenant, the named stores and
(when attribute filters are given) the files whose attributes match, and each is cut at ``candidates``.
A chunk's fused score is ``sum 1/(rrf_k + rank)`` over the lists it appears in, normalised so that first
place in both lists is 1.0 (ties: lower chunk id first); a third statement reads the fused top ``k``.

Vector list: ``hnsw.ef_search`` is raised for the query (pgvector's default of 40 loses recall) and
``hnsw.iterative_scan`` keeps scanning the graph until enough chunks pass the tenant/store filter.

Full-text list: the GIN index on the stored ``tsv`` column finds the chunks that contain any of the query's
lexemes, but ranking every one of them is what made this list slow (a common word matches a large share of
a store, and each ranked chunk costs a heap read and ``ts_rank_cd``). So only a pool of matching chunks is
ranked with ``ts_rank_cd`` (over any lexeme, as before), read through the index by conjunctions, strongest
first, and Postgres stops reading once ``2 * text_pool`` chunks came back: up to ``text_pool`` chunks with
*every* lexeme; for each three of the first ``TIER_LEXEMES`` lexemes, then each two of the first
``PAIR_LEXEMES``, then each lexeme alone, a share of ``text_pool`` (at least 10) chunks with them, so that a
rare word (a name, a code) is not crowded out by a common one. ``ts_rank_cd`` over an OR query counts the
query's words in a chunk, so the chunks that match the most lexemes are the ones it ranks first, and they
are the ones the first queries read. Conjunctions, because GIN answers them by skipping through the posting
lists, while one disjunction of them ("at least two of ...") made it test every chunk with any of the
lexemes (≈2.5 ms per tier at 100k chunks). When every match fits in the pool the ranking is exactly the full
one; beyond that, chunks that match only common lexemes and that the index yields late are not ranked.
``exact`` ranks every match (the benchmark's reference).

Plans: the vector list forces custom plans and turns sequential scans off: up to tens of thousands of
chunks the planner prices an exact scan of every embedding below the HNSW index, which measured 35 ms at
10k chunks against a few ms for the index. Small stores among many still use the (tenant, store) index.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import asyncpg
import numpy as np

from services.rag import filters

# Vector list: $1 tenant, $2 stores, $3 candidates, $4 query vector, $5 file ids (NULL: any file).
_VECTOR = """
SELECT c.id, c.embedding <=> (SELECT $4::real[]::vector) AS distance
FROM rag_chunks c
WHERE c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[]) AND c.embedding IS NOT NULL
  AND ($5::text[] IS NULL OR c.file_id = ANY($5::text[]))
ORDER BY c.embedding <=> (SELECT $4::real[]::vector)
LIMIT $3
"""

# Full-text list: $1 tenant, $2 stores, $3 candidates, $4 file ids, $5 the ranking tsquery (any lexeme), $6 the
# pool's tsqueries in order and $7 the chunks each may add (NULL: every match), $8 the pool's size (NULL: no limit;
# counting a chunk each time a query yields it). Postgres runs the queries in order and stops once the pool is full.
_TEXT = """
WITH pool AS MATERIALIZED (
    SELECT DISTINCT ON (p.id) p.id, p.tsv FROM (
        SELECT m.id, m.tsv FROM unnest($6::text[], $7::int[]) AS t(q, n) CROSS JOIN LATERAL (
            SELECT c.id, c.tsv FROM rag_chunks c
            WHERE c.tsv @@ t.q::tsquery AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
              AND ($4::text[] IS NULL OR c.file_id = ANY($4::text[]))
            LIMIT t.n) m
        LIMIT $8
    ) p
    ORDER BY p.id
)
SELECT id, ts_rank_cd(tsv, $5::tsquery) AS rank FROM pool ORDER BY rank DESC, id LIMIT $3
"""

# The fused top k: $1 their ids, $2 the query vector (NULL: similarity 0).
_DETAILS = """
SELECT c.id, c.text, c.filename, c.file_id, c.vector_store_id, c.chunk_index, c.start_char, c.end_char,
       COALESCE(1 - (c.embedding <=> (SELECT $2::real[]::vector)), 0)::real AS similarity,
       COALESCE(a.attributes::text, '{}') AS attributes
FROM rag_chunks c
LEFT JOIN rag_vector_store_files a ON a.vector_store_id = c.vector_store_id AND a.file_id = c.file_id
WHERE c.id = ANY($1::bigint[])
"""

# The vector list's transaction: pgvector's search settings and the planner's choice of index (see above).
_VECTOR_SETTINGS = (
    "BEGIN READ ONLY; SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = relaxed_order; "
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = {seq}; "
    "SET LOCAL enable_indexscan = {idx}; SET LOCAL enable_bitmapscan = {idx}"
)
_TEXT_SETTINGS = "BEGIN READ ONLY; SET LOCAL enable_seqscan = {seq}; SET LOCAL plan_cache_mode = force_custom_plan"
_LEXEMES = "SELECT tsvector_to_array(to_tsvector('english', $1))"


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    text: str
    score: float
    source: str
    file_id: str
    vector_store_id: str
    chunk_index: int
    start_char: int = 0
    end_char: int = 0
    similarity: float = 0.0
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievalParams:
    rrf_k: int = 60
    candidates: int = 50
    ef_search: int = 100
    score_threshold: float = 0.0
    text_pool: int = 120  # matching chunks ranked for the full-text list (see the module's docstring)
    mode: Literal["hybrid", "vector", "text"] = "hybrid"  # the lists to fuse (the benchmark measures each)
    exact: bool = False  # sequential-scan vector search and every text match ranked: the reference ranking


PAIR_LEXEMES = 10  # the pool's "each two lexemes" queries pair this many of a query's lexemes (45 pairs)
TIER_LEXEMES = 6  # the "three lexemes" tier combines this many of a query's lexemes (20 triples)


def _lexeme(lex: str) -> str:
    """A lexeme as a quoted tsquery operand (quotes and backslashes doubled), taken as is: not re-stemmed."""
    return "'" + lex.replace("\\", "\\\\").replace("'", "''") + "'"


def text_queries(lexemes: list[str]) -> tuple[str | None, str | None, str | None, list[str]]:
    """(the ranking query: any lexeme; every lexeme (None for fewer than two); at least two of the first
    ``PAIR_LEXEMES`` (None for fewer than three); each lexeme alone)."""
    ops = [_lexeme(lex) for lex in lexemes if lex]
    if not ops:
        return None, None, None, []
    pairs = " | ".join(f"{a} & {b}" for a, b in itertools.combinations(ops[:PAIR_LEXEMES], 2))
    return " | ".join(ops), (" & ".join(ops) if len(ops) > 1 else None), (pairs if len(ops) > 2 else None), ops


def text_pool_queries(lexemes: list[str], pool: int) -> tuple[list[str], list[int]]:
    """The pool's queries, strongest first, each a conjunction (GIN answers those by skipping through the
    posting lists, where a disjunction of conjunctions makes it test every chunk with any of the lexemes), and
    the chunks each may add: every lexeme (``pool``); each three of the first ``TIER_LEXEMES``; each two of the
    first ``PAIR_LEXEMES``; each lexeme alone (a share of ``pool`` per query of a tier, at least 10)."""
    ops = list(dict.fromkeys(_lexeme(lex) for lex in lexemes if lex))
    queries: list[str] = []
    limits: list[int] = []
    if len(ops) > 1:
        queries.append(" & ".join(ops))
        limits.append(pool)
    tiers = [
        [" & ".join(c) for c in itertools.combinations(ops[:TIER_LEXEMES], 3)] if len(ops) > 3 else [],
        [" & ".join(c) for c in itertools.combinations(ops[:PAIR_LEXEMES], 2)] if len(ops) > 2 else [],
        ops,
    ]
    for tier in tiers:
        queries += tier
        limits += [max(pool // len(tier), 10)] * len(tier) if tier else []
    return queries, limits


async def matching_files(pool: asyncpg.Pool, tenant_id: str, store_ids: list[str], spec: object) -> list[str]:
    """Files in the stores whose attributes satisfy an OpenAI filter."""
    params: list[object] = [tenant_id, store_ids]
    where = filters.compile_filter(spec, "attributes", params)
    rows = await pool.fetch(
        f"SELECT DISTINCT file_id FROM rag_vector_store_files WHERE tenant_id = $1 AND vector_store_id = ANY($2) "
        f"AND {where}",
        *params,
    )
    return [r["file_id"] for r in rows]


async def retrieve(
    pool: asyncpg.Pool,
    tenant_id: str,
    query: str,
    store_ids: list[str],
    k: int,
    query_vector: np.ndarray | None = None,
    params: RetrievalParams | None = None,
    file_ids: list[str] | None = None,
) -> list[RetrievedChunk]:
    """The ``k`` best chunks (fused score at least ``params.score_threshold``). Without ``query_vector``
    only the full-text list ranks; ``file_ids`` (when not None) restricts both lists to those files."""
    p = params or RetrievalParams()
    if not store_ids or not query.strip() or k <= 0 or (file_ids is not None and not file_ids):
        return []
    vec = query_vector.astype(float).tolist() if query_vector is not None and p.mode != "text" else None
    candidates = max(p.candidates, 4 * k)
    lists = await asyncio.gather(
        _vector_list(pool, tenant_id, store_ids, candidates, vec, p, file_ids),
        _text_list(pool, tenant_id, query, store_ids, candidates, p, file_ids),
    )
    fused = fuse(lists, p.rrf_k, k)
    if not fused:
        return []
    rows = {r["id"]: r for r in await pool.fetch(_DETAILS, [i for i, _ in fused], vec)}
    return [
        RetrievedChunk(
            text=r["text"],
            score=score,
            source=r["filename"],
            file_id=r["file_id"],
            vector_store_id=r["vector_store_id"],
            chunk_index=r["chunk_index"],
            start_char=r["start_char"],
            end_char=r["end_char"],
            similarity=float(r["similarity"]),
            attributes=json.loads(r["attributes"]),
        )
        for i, score in fused
        if (r := rows.get(i)) is not None and score >= p.score_threshold
    ]


def fuse(lists: Sequence[Sequence[int]], rrf_k: int, k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists: the ``k`` best ``(id, score)``, score ``sum 1/(rrf_k + rank)``
    normalised so that first place in two lists is 1.0 (as a float4, like the single statement before);
    ties go to the lower id."""
    totals: dict[int, Fraction] = {}
    for ranked in lists:
        for rank, chunk_id in enumerate(ranked, 1):
            totals[chunk_id] = totals.get(chunk_id, Fraction(0)) + Fraction(1, rrf_k + rank)
    best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [(i, float(np.float32(float(rrf * (rrf_k + 1) / 2)))) for i, rrf in best]


class _Transaction:
    """A read-only transaction opened with ``SET LOCAL`` settings in one round trip (asyncpg's own
    transaction() takes one for BEGIN and one per setting), rolled back on error."""

    def __init__(self, conn: asyncpg.Connection, begin: str) -> None:
        self.conn, self.begin = conn, begin

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            await self.conn.execute(self.begin)
        except BaseException:
            if self.conn.is_in_transaction():
                await self.conn.execute("ROLLBACK")
            raise
        return self.conn

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _vector_settings(p: RetrievalParams) -> str:
    on, off = ("off", "on") if p.exact else ("on", "off")
    return _VECTOR_SETTINGS.format(ef=max(int(p.ef_search), 1), seq=off, idx=on)


async def _vector_list(
    pool: asyncpg.Pool, tenant_id: str, store_ids: list[str], candidates: int, vec: list[float] | None,
    p: RetrievalParams, file_ids: list[str] | None, explain: bool = False,
) -> list[int] | str:
    """Chunk ids by distance to the query vector (ties: lower id first); no vector: none."""
    if vec is None:
        return [] if not explain else ""
    async with pool.acquire() as conn, _Transaction(conn, _vector_settings(p)):
        if explain:
            return await _plan(conn, _VECTOR, tenant_id, store_ids, candidates, vec, file_ids)
        rows = await conn.fetch(_VECTOR, tenant_id, store_ids, candidates, vec, file_ids)
    return [r["id"] for r in sorted(rows, key=lambda r: (r["distance"], r["id"]))]


async def _text_list(
    pool: asyncpg.Pool, tenant_id: str, query: str, store_ids: list[str], candidates: int, p: RetrievalParams,
    file_ids: list[str] | None, explain: bool = False,
) -> list[int] | str:
    """Chunk ids by ``ts_rank_cd`` over any of the query's lexemes (ties: lower id first), ranked over the pool
    (exact mode: over every match); vector mode: none."""
    if p.mode == "vector":
        return [] if not explain else ""
    async with pool.acquire() as conn:
        lexemes = await conn.fetchval(_LEXEMES, query)
        rank_q = text_queries(lexemes)[0]
        if rank_q is None:
            return [] if not explain else ""
        pool_size = max(p.text_pool, 1)
        if p.exact:
            args = (rank_q, [rank_q], [None], None)
        else:
            args = (rank_q, *text_pool_queries(lexemes, pool_size), 2 * pool_size)
        async with _Transaction(conn, _TEXT_SETTINGS.format(seq="on" if p.exact else "off")):
            if explain:
                return await _plan(conn, _TEXT, tenant_id, store_ids, candidates, file_ids, *args)
            rows = await conn.fetch(_TEXT, tenant_id, store_ids, candidates, file_ids, *args)
    return [r["id"] for r in rows]


async def _plan(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    return "\n".join(r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args))


async def explain(
    pool: asyncpg.Pool, tenant_id: str, query: str, store_ids: list[str], k: int,
    query_vector: np.ndarray | None = None, params: RetrievalParams | None = None,
) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the two statements :func:`retrieve` runs (tests and tuning)."""
    p = params or RetrievalParams()
    vec = query_vector.astype(float).tolist() if query_vector is not None and p.mode != "text" else None
    candidates = max(p.candidates, 4 * k)
    plans = [
        await _vector_list(pool, tenant_id, store_ids, candidates, vec, p, None, explain=True),
        await _text_list(pool, tenant_id, query, store_ids, candidates, p, None, explain=True),
    ]
    return "\n".join(str(plan) for plan in plans if plan)
