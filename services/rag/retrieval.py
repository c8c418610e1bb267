"""Retrieval queries against ``rag_chunks`` (see ``flotilla/migrations``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# Full-text ranking over any of the query's lexemes (OR), scoped to tenant and stores. Vector search
# joins it (hybrid, reciprocal rank fusion) once the embedder lands with the RAG issue.
_FULL_TEXT = """
WITH q AS (
    SELECT to_tsquery('english',
                      array_to_string(tsvector_to_array(to_tsvector('english', $1)), ' | ')) AS query
)
SELECT c.text, c.filename, c.file_id, c.vector_store_id, c.chunk_index,
       ts_rank_cd(c.tsv, q.query)::real AS score
FROM rag_chunks c, q
WHERE c.tenant_id = $2 AND c.vector_store_id = ANY($3::text[]) AND c.tsv @@ q.query
ORDER BY score DESC, c.id
LIMIT $4
"""


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    text: str
    score: float
    source: str
    file_id: str
    vector_store_id: str
    chunk_index: int


async def retrieve(
    pool: asyncpg.Pool, tenant_id: str, query: str, store_ids: list[str], k: int
) -> list[RetrievedChunk]:
    if not store_ids or not query.strip() or k <= 0:
        return []
    rows = await pool.fetch(_FULL_TEXT, query, tenant_id, store_ids, k)
    return [
        RetrievedChunk(
            text=r["text"],
            score=float(r["score"]),
            source=r["filename"],
            file_id=r["file_id"],
            vector_store_id=r["vector_store_id"],
            chunk_index=r["chunk_index"],
        )
        for r in rows
    ]
