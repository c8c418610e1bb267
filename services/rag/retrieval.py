"""Hybrid retrieval over ``rag_chunks``: a vector ranking (pgvector HNSW, cosine) and a full-text ranking
(``ts_rank_cd`` over any of the query's lexemes) fused with reciprocal rank fusion.

Both lists are scoped to the tenant, the named stores and (when attribute filters are given) the files
whose attributes match; each is cut at ``candidates``. A chunk's fused score is ``sum 1/(rrf_k + rank)``
over the lists it appears in, normalised so that first place in both lists is 1.0. ``hnsw.ef_search``
is raised for the query (pgvector's default of 40 loses recall) and ``hnsw.iterative_scan`` keeps
scanning the graph until enough chunks pass the tenant/store filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import asyncpg
import numpy as np

from services.rag import filters

_HYBRID = """
WITH vec AS MATERIALIZED (
    SELECT c.id, c.embedding <=> (SELECT $5::real[]::vector) AS dist
    FROM rag_chunks c
    WHERE $5::real[] IS NOT NULL AND c.tenant_id = $2 AND c.vector_store_id = ANY($3::text[])
      AND c.embedding IS NOT NULL AND ($6::text[] IS NULL OR c.file_id = ANY($6::text[]))
    ORDER BY c.embedding <=> (SELECT $5::real[]::vector)
    LIMIT $4
), vr AS (
    SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM vec
), q AS (
    SELECT to_tsquery('english', array_to_string(tsvector_to_array(to_tsvector('english', $1)), ' | ')) AS query
), fts AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.tsv, q.query) DESC, c.id) AS r
    FROM rag_chunks c, q
    WHERE c.tenant_id = $2 AND c.vector_store_id = ANY($3::text[]) AND c.tsv @@ q.query
      AND ($6::text[] IS NULL OR c.file_id = ANY($6::text[]))
    ORDER BY ts_rank_cd(c.tsv, q.query) DESC, c.id
    LIMIT $4
), fused AS (
    SELECT id, sum(1.0 / ($7 + r)) AS rrf FROM (SELECT id, r FROM vr UNION ALL SELECT id, r FROM fts) x GROUP BY id
)
SELECT c.text, c.filename, c.file_id, c.vector_store_id, c.chunk_index, c.start_char, c.end_char,
       (f.rrf * ($7 + 1) / 2.0)::real AS score,
       COALESCE(1 - (c.embedding <=> (SELECT $5::real[]::vector)), 0)::real AS similarity,
       COALESCE(a.attributes::text, '{}') AS attributes
FROM fused f
JOIN rag_chunks c ON c.id = f.id
LEFT JOIN rag_vector_store_files a ON a.vector_store_id = c.vector_store_id AND a.file_id = c.file_id
ORDER BY f.rrf DESC, c.id
LIMIT $8
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
    vec = query_vector.astype(float).tolist() if query_vector is not None else None
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(
            f"SET LOCAL hnsw.ef_search = {max(int(p.ef_search), 1)}; SET LOCAL hnsw.iterative_scan = relaxed_order"
        )
        rows = await conn.fetch(
            _HYBRID, query, tenant_id, store_ids, max(p.candidates, 4 * k), vec, file_ids, p.rrf_k, k
        )
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
