"""Hybrid retrieval over ``rag_chunks``: a vector ranking (pgvector HNSW, cosine) and a full-text ranking
(``ts_rank_cd`` over any of the query's lexemes) fused with reciprocal rank fusion, in one statement.

Both lists are scoped to the tenant, the named stores and (when attribute filters are given) the files
whose attributes match; each is cut at ``candidates``. A chunk's fused score is ``sum 1/(rrf_k + rank)``
over the lists it appears in, normalised so that first place in both lists is 1.0.

Vector list: ``hnsw.ef_search`` is raised for the query (pgvector's default of 40 loses recall) and
``hnsw.iterative_scan`` keeps scanning the graph until enough chunks pass the tenant/store filter.

Full-text list: the GIN index on the stored ``tsv`` column finds the chunks that contain any of the query's
lexemes, but ranking every one of them is what made this list slow (``ts_rank_cd`` costs tens of µs per
chunk on these CPUs, and a common word matches a large share of a store). So only a pool of matching chunks
is ranked with ``ts_rank_cd`` (over any lexeme, as before), gathered through the index in three tiers
(Postgres stops reading each at its ``LIMIT``): up to ``text_pool`` chunks with *every* lexeme, up to
``text_pool`` chunks with at least two of them, and for each lexeme up to ``max(text_pool / lexemes, 10)``
chunks with it, so that a rare word (a name, a code) is not crowded out by a common one. When no lexeme
matches more chunks than its share, the pool holds every match and the ranking is exactly the one before;
beyond that, chunks that match one common lexeme and that the index yields late are not ranked.
``exact`` ranks every match (the benchmark's reference).

Plans: custom plans are forced, so that each query's own lexemes and stores drive the choice of index (a
generic plan could scan the table for a rare lexeme), and sequential scans are off: up to tens of thousands of
chunks the planner prices an exact scan of every embedding below the HNSW index, which measured 35 ms at 10k
chunks against a few ms for the index. Small stores among many still use the (tenant, store) index.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
import numpy as np

from services.rag import filters

# $1 tenant, $2 stores, $3 candidates, $4 query vector, $5 file ids, $6 rrf_k, $7 k, $8 the ranking tsquery
# (any lexeme), $9 the first tier's tsquery (every lexeme; exact mode: any), $10 each lexeme alone (NULL: none or
# exact mode), $11 the limit of the first two tiers and $12 the chunks taken per lexeme (NULL: every match), $13
# at least two lexemes (NULL: fewer than three lexemes, or exact mode).
_HYBRID = """
WITH vec AS MATERIALIZED (
    SELECT c.id, row_number() OVER (ORDER BY c.embedding <=> (SELECT $4::real[]::vector), c.id) AS r
    FROM (SELECT c.id, c.embedding FROM rag_chunks c
          WHERE $4::real[] IS NOT NULL AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
            AND c.embedding IS NOT NULL AND ($5::text[] IS NULL OR c.file_id = ANY($5::text[]))
          ORDER BY c.embedding <=> (SELECT $4::real[]::vector)
          LIMIT $3) c
), pool AS MATERIALIZED (
    SELECT DISTINCT ON (p.id) p.id, p.tsv FROM (
        (SELECT c.id, c.tsv FROM rag_chunks c
         WHERE c.tsv @@ $9::tsquery AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
           AND ($5::text[] IS NULL OR c.file_id = ANY($5::text[])) LIMIT $11)
        UNION ALL
        (SELECT c.id, c.tsv FROM rag_chunks c
         WHERE c.tsv @@ $13::tsquery AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
           AND ($5::text[] IS NULL OR c.file_id = ANY($5::text[])) LIMIT $11)
        UNION ALL
        SELECT m.id, m.tsv FROM unnest($10::text[]) AS l(q) CROSS JOIN LATERAL (
            SELECT c.id, c.tsv FROM rag_chunks c
            WHERE c.tsv @@ l.q::tsquery AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
              AND ($5::text[] IS NULL OR c.file_id = ANY($5::text[])) LIMIT $12) m
    ) p
    ORDER BY p.id
), fts AS (
    SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r
    FROM (SELECT id, ts_rank_cd(tsv, $8::tsquery) AS rank FROM pool) ranked
    ORDER BY rank DESC, id
    LIMIT $3
), fused AS (
    SELECT id, sum(1.0 / ($6 + r)) AS rrf FROM (SELECT id, r FROM vec UNION ALL SELECT id, r FROM fts) x
    GROUP BY id
    ORDER BY rrf DESC, id
    LIMIT $7
)
SELECT c.text, c.filename, c.file_id, c.vector_store_id, c.chunk_index, c.start_char, c.end_char,
       (f.rrf * ($6 + 1) / 2.0)::real AS score,
       COALESCE(1 - (c.embedding <=> (SELECT $4::real[]::vector)), 0)::real AS similarity,
       COALESCE(a.attributes::text, '{}') AS attributes
FROM fused f
JOIN rag_chunks c ON c.id = f.id
LEFT JOIN rag_vector_store_files a ON a.vector_store_id = c.vector_store_id AND a.file_id = c.file_id
ORDER BY f.rrf DESC, c.id
"""

# One round trip before the search: the transaction's index settings and the query's lexemes.
_PREPARE = """
SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_indexscan', $2, true), set_config('enable_bitmapscan', $2, true),
       set_config('enable_seqscan', CASE WHEN $2 = 'on' THEN 'off' ELSE 'on' END, true),
       CASE WHEN $3 THEN tsvector_to_array(to_tsvector('english', $4)) ELSE '{}'::text[] END AS lexemes
"""

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


PAIR_LEXEMES = 10  # the "at least two lexemes" tier pairs this many of a query's lexemes (45 pairs)


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
    rows = await _run(pool, tenant_id, query, store_ids, k, query_vector, p, file_ids)
    return [
        RetrievedChunk(
            text=r["text"],
            score=float(r["score"]),
            source=r["filename"],
            file_id=r["file_id"],
            vector_store_id=r["vector_store_id"],
            chunk_index=r["chunk_index"],
            start_char=r["start_char"],
            end_char=r["end_char"],
            similarity=float(r["similarity"]),
            attributes=json.loads(r["attributes"]),
        )
        for r in rows
        if float(r["score"]) >= p.score_threshold
    ]


async def _run(
    pool: asyncpg.Pool, tenant_id: str, query: str, store_ids: list[str], k: int, query_vector: np.ndarray | None,
    p: RetrievalParams, file_ids: list[str] | None, explain: bool = False,
) -> list[asyncpg.Record]:
    vec = query_vector.astype(float).tolist() if query_vector is not None and p.mode != "text" else None
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        prepared = await conn.fetchrow(_PREPARE, str(max(int(p.ef_search), 1)), "off" if p.exact else "on",
                                       p.mode != "vector", query)
        rank_q, all_q, pairs_q, each_q = text_queries(prepared["lexemes"])
        pool_size = max(p.text_pool, 1)
        return await conn.fetch(
            ("EXPLAIN (ANALYZE, BUFFERS) " if explain else "") + _HYBRID,
            tenant_id, store_ids, max(p.candidates, 4 * k), vec, file_ids, p.rrf_k, k, rank_q,
            rank_q if p.exact else all_q, None if p.exact or not each_q else each_q,
            None if p.exact else pool_size, max(pool_size // max(len(each_q), 1), 10), None if p.exact else pairs_q,
        )


async def explain(
    pool: asyncpg.Pool, tenant_id: str, query: str, store_ids: list[str], k: int,
    query_vector: np.ndarray | None = None, params: RetrievalParams | None = None,
) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the statement :func:`retrieve` runs (tests and tuning)."""
    rows = await _run(pool, tenant_id, query, store_ids, k, query_vector, params or RetrievalParams(), None, True)
    return "\n".join(r[0] for r in rows)
