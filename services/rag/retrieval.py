"""Hybrid retrieval over ``rag_chunks``: a vector ranking (pgvector HNSW, cosine) and a full-text ranking
(``ts_rank_cd`` over any of the query's lexemes) fused with reciprocal rank fusion.

The two lists are two statements run concurrently on two pooled connections (with a 2-core database the
search costs about the slower list, not their sum); both are scoped to the tenant, the named stores and
(when attribute filters are given) the files whose attributes match, and each is cut at ``candidates``.
A chunk's fused score is ``sum 1/(rrf_k + rank)`` over the lists it appears in, normalised so that first
place in both lists is 1.0 (ties: lower chunk id first; the sums are compared exactly, in integers). The list
that finishes last fuses both and reads the fused top ``k`` with a third statement on its own connection.

Vector list: ``hnsw.ef_search`` is raised for the query (pgvector's default of 40 loses recall) and
``hnsw.iterative_scan`` keeps scanning the graph until enough chunks pass the tenant/store filter.

Full-text list. The score: ``ts_rank_cd`` of a chunk's ``tsv`` (every position weight D, no normalisation)
for a query "any of these lexemes" is 0.1 per occurrence of any of them, so the list ranks chunks by how often
the query's lexemes occur in them (ties: lower id first), counted as the sum of ``ts_rank_cd`` of each lexeme
alone: the same order as ``ts_rank_cd`` of the whole query at a third of its cost (it zeroes 32 kB per query
item on every call, ~6.5 µs for five lexemes joined by four ORs against ~0.4 µs for one lexeme).

The pool. The GIN index on ``tsv`` finds the chunks with any of the lexemes, but scoring every one of them is
what made this list slow (a common word matches a large share of a store, and each chunk costs a heap read
and its score), so only a pool of matching chunks is scored, read through the index by conjunctions (GIN
answers those by skipping through the posting lists; one disjunction of them, "at least two of ...", made it
test every chunk with any of the lexemes, ≈2.5 ms per tier at 100k chunks), in up to three tiers:

1. each two of the first ``PAIR_LEXEMES`` lexemes, up to ``text_pool`` chunks each and ``PAIR_ROWS * text_pool``
   in all. While no pair is cut, this reads every chunk with two or more of those lexemes;
2. only when a pair was cut: every lexeme (``text_pool``) and each three of the first ``TIER_LEXEMES`` (a share
   of ``text_pool``, at least 10 each), so that chunks with more lexemes are still read when common pairs
   overflow;
3. only when the first tiers found fewer than ``text_pool`` chunks (few lexemes, rare words): each lexeme
   alone, a share of ``text_pool`` (at least 10) each, so that a rare word (a name, a code) is not crowded
   out by a common one.

Of the chunks the first two tiers read, ``SCORED * text_pool`` are scored, with those of the third: the ones
read by the largest conjunction, then most often (the most lexemes), then the lower ids. So while no pair is
cut and at most that many chunks have two lexemes, the list is exact down to the chunks with one lexeme.
What it misses: a chunk that has one of the lexemes several times and no other is read only by the third tier
(at 100k synthetic chunks, most of the text list's misses against exact), and when pairs overflow, chunks
that only common pairs and triples reach and that the index yields late. ``exact`` ranks every match with
``ts_rank_cd`` (the benchmark's reference).

The previous pool (every lexeme, each three, each two and each one always read: 26 index scans for five
lexemes, stopping at 240 chunks, then ``ts_rank_cd`` of the whole query) cost 9.7 ms a search at 100k chunks
against 5.9 ms now (interleaved runs, round trips included), recall@5 0.91 → 0.97; with eight lexemes it was
cheaper, 13.4 against 14.6 ms, but recall@5 was 0.79 against 0.98. Measured and left: a narrow side table
of ``(id, scope, tsv)`` for this list reads no faster (the embeddings are already TOASTed out of the heap rows;
the time is in the posting lists and the scores, not heap pages).

Plans: both lists force custom plans (the planner sees the tenant and stores, so a small store among many
uses the (tenant, store) index) and turn sequential scans off: up to tens of thousands of chunks the planner
prices an exact scan of every embedding below the HNSW index, which measured 35 ms at 10k chunks against a
few ms for the index.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

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

# Full-text list: $1 tenant, $2 stores, $3 candidates, $4 file ids (NULL: any file), $5 the query's lexemes (each a
# tsquery, for the score); the pool's tiers, each as its queries (tsquery texts, conjunctions) and the chunks each
# may add: $6/$7 each two lexemes, $8 the chunks they may add in all; $9/$10 every lexeme and each three, read only
# when the first tier was cut at a limit; $11/$12 each lexeme alone, read only when the first tiers found fewer
# than $13 chunks; $14 how many of the chunks the first tiers found are scored (those read by the largest
# conjunction, numnode being 2 * lexemes - 1, then most often, then the lower ids).
_TEXT = """
WITH pairs AS MATERIALIZED (
    SELECT t.i, t.n, numnode(t.q) AS size, m.id, m.tsv
    FROM unnest($6::tsquery[], $7::int[]) WITH ORDINALITY AS t(q, n, i) CROSS JOIN LATERAL (
        SELECT c.id, c.tsv FROM rag_chunks c
        WHERE c.tsv @@ t.q AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
          AND ($4::text[] IS NULL OR c.file_id = ANY($4::text[]))
        LIMIT t.n) m
    LIMIT $8
), strong AS MATERIALIZED (
    SELECT id, any_value(tsv) AS tsv FROM (
        SELECT size, id, tsv FROM pairs
        UNION ALL
        SELECT numnode(t.q), m.id, m.tsv FROM unnest($9::tsquery[], $10::int[]) AS t(q, n) CROSS JOIN LATERAL (
            SELECT c.id, c.tsv FROM rag_chunks c
            WHERE c.tsv @@ t.q AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
              AND ($4::text[] IS NULL OR c.file_id = ANY($4::text[]))
            LIMIT t.n) m
        WHERE (SELECT count(*) FROM pairs) >= $8 OR EXISTS (SELECT FROM pairs GROUP BY i, n HAVING count(*) >= n)
    ) h
    GROUP BY id ORDER BY max(size) DESC, count(*) DESC, id LIMIT $14
), pool AS (
    SELECT id, tsv FROM strong
    UNION ALL
    SELECT DISTINCT ON (m.id) m.id, m.tsv FROM unnest($11::tsquery[], $12::int[]) AS t(q, n) CROSS JOIN LATERAL (
        SELECT c.id, c.tsv FROM rag_chunks c
        WHERE c.tsv @@ t.q AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
          AND ($4::text[] IS NULL OR c.file_id = ANY($4::text[]))
        LIMIT t.n) m
    WHERE (SELECT count(*) FROM strong) < $13 AND m.id NOT IN (SELECT id FROM strong)
)
SELECT id, (SELECT sum(round(10 * ts_rank_cd(p.tsv, l)))::int FROM unnest($5::tsquery[]) AS l) AS occurrences
FROM pool p ORDER BY occurrences DESC, id LIMIT $3
"""

# Exact mode (the benchmark's reference): every chunk with any of the lexemes ranked.
_TEXT_EXACT = """
SELECT c.id, ts_rank_cd(c.tsv, $5::tsquery) AS rank FROM rag_chunks c
WHERE c.tsv @@ $5::tsquery AND c.tenant_id = $1 AND c.vector_store_id = ANY($2::text[])
  AND ($4::text[] IS NULL OR c.file_id = ANY($4::text[]))
ORDER BY rank DESC, c.id LIMIT $3
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


_Fused = tuple[list[tuple[int, float]], list[asyncpg.Record]]  # the fused top k and its rows


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
    text_pool: int = 120  # the full-text pool: chunks per index conjunction (see the module's docstring)
    mode: Literal["hybrid", "vector", "text"] = "hybrid"  # the lists to fuse (the benchmark measures each)
    exact: bool = False  # sequential-scan vector search and every text match ranked: the reference ranking


PAIR_LEXEMES = 10  # the pool's "each two lexemes" queries pair this many of a query's lexemes (45 pairs)
TIER_LEXEMES = 6  # the "three lexemes" tier combines this many of a query's lexemes (20 triples)
PAIR_ROWS = 10  # the "each two lexemes" tier reads up to this many times text_pool chunks in all
SCORED = 4  # of the chunks the first tiers read, this many times text_pool are scored


@dataclass(frozen=True)
class TextPool:
    """The full-text pool's tiers: each its queries (tsquery texts, each a conjunction) and the chunks each may
    add (see :func:`text_pool_queries`)."""

    pairs: tuple[list[str], list[int]]
    triples: tuple[list[str], list[int]]
    singles: tuple[list[str], list[int]]


def _lexeme(lex: str) -> str:
    """A lexeme as a quoted tsquery operand (quotes and backslashes doubled), taken as is: not re-stemmed."""
    return "'" + lex.replace("\\", "\\\\").replace("'", "''") + "'"


def rank_query(lexemes: list[str]) -> str | None:
    """The ranking query: any of the lexemes (None without any)."""
    return " | ".join(_lexeme(lex) for lex in lexemes if lex) or None


def text_pool_queries(lexemes: list[str], pool: int) -> TextPool:
    """The pool's tiers, each a list of conjunctions (GIN answers those by skipping through the posting lists,
    where a disjunction of conjunctions makes it test every chunk with any of the lexemes) and the chunks each
    may add: each two of the first ``PAIR_LEXEMES`` lexemes (``pool`` each; the statement stops the tier at
    ``PAIR_ROWS * pool`` chunks in all); every lexeme (``pool``) and each three of the first ``TIER_LEXEMES`` (a
    share of ``pool``, at least 10 each); each lexeme alone (a share of ``pool``, at least 10 each)."""
    ops = list(dict.fromkeys(_lexeme(lex) for lex in lexemes if lex))
    pairs = [" & ".join(c) for c in itertools.combinations(ops[:PAIR_LEXEMES], 2)]
    triples = [" & ".join(c) for c in itertools.combinations(ops[:TIER_LEXEMES], 3)] if len(ops) > 3 else []
    every = [" & ".join(ops)] if len(ops) > 2 else []
    return TextPool(
        pairs=(pairs, [pool] * len(pairs)),
        triples=(every + triples, [pool] * len(every) + [max(pool // max(len(triples), 1), 10)] * len(triples)),
        singles=(ops, [max(pool // max(len(ops), 1), 10)] * len(ops)),
    )


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
    lists: list[list[int] | None] = [None, None]

    async def run(slot: int, ids: Callable[[asyncpg.Connection], Awaitable[list[int]]] | None) -> _Fused | None:
        """One list on a pooled connection; the list that finishes last fuses both and reads the fused top k on
        its connection (one pool round trip less; with a pool of one connection the lists run in turn)."""
        if ids is None:
            lists[slot] = []
            return None
        async with pool.acquire() as conn:
            lists[slot] = await ids(conn)
            if lists[1 - slot] is None:
                return None
            fused = fuse([lst or [] for lst in lists], p.rrf_k, k)
            return fused, (await conn.fetch(_DETAILS, [i for i, _ in fused], vec) if fused else [])

    done = [r for r in await asyncio.gather(
        run(0, None if vec is None else lambda conn: _vector_list(conn, tenant_id, store_ids, candidates, vec, p,
                                                                  file_ids)),
        run(1, None if p.mode == "vector" else lambda conn: _text_list(conn, tenant_id, query, store_ids, candidates,
                                                                       p, file_ids)),
    ) if r is not None]
    if not done:
        return []
    fused, records = done[0]
    rows = {r["id"]: r for r in records}
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
    ties go to the lower id. The sums are compared exactly, as integer multiples of ``1/lcm(rrf_k + ranks)``
    (as fast as floats, where ``Fraction`` arithmetic cost ~0.5 ms a search)."""
    longest = max((len(ranked) for ranked in lists), default=0)
    if not longest:
        return []
    unit = _common_denominator(rrf_k, longest)
    totals: dict[int, int] = {}
    for ranked in lists:
        for rank, chunk_id in enumerate(ranked, 1):
            totals[chunk_id] = totals.get(chunk_id, 0) + unit // (rrf_k + rank)
    best = heapq.nsmallest(k, totals.items(), key=lambda item: (-item[1], item[0]))
    return [(i, float(np.float32(float(Fraction(n * (rrf_k + 1), 2 * unit))))) for i, n in best]


@functools.lru_cache(maxsize=64)
def _common_denominator(rrf_k: int, ranks: int) -> int:
    return math.lcm(*range(rrf_k + 1, rrf_k + ranks + 1))


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
    conn: asyncpg.Connection, tenant_id: str, store_ids: list[str], candidates: int, vec: list[float],
    p: RetrievalParams, file_ids: list[str] | None, explain: bool = False,
) -> Any:
    """Chunk ids by distance to the query vector (ties: lower id first); ``explain``: the plan."""
    async with _Transaction(conn, _vector_settings(p)):
        if explain:
            return await _plan(conn, _VECTOR, tenant_id, store_ids, candidates, vec, file_ids)
        rows = await conn.fetch(_VECTOR, tenant_id, store_ids, candidates, vec, file_ids)
    return [r["id"] for r in sorted(rows, key=lambda r: (r["distance"], r["id"]))]


async def _text_list(
    conn: asyncpg.Connection, tenant_id: str, query: str, store_ids: list[str], candidates: int,
    p: RetrievalParams, file_ids: list[str] | None, explain: bool = False,
) -> Any:
    """Chunk ids by ``ts_rank_cd`` over any of the query's lexemes (ties: lower id first), ranked over the pool
    (exact mode: over every match); ``explain``: the plan (none without lexemes)."""
    lexemes = await conn.fetchval(_LEXEMES, query)
    rank_q = rank_query(lexemes)
    if rank_q is None:
        return [] if not explain else ""
    if p.exact:
        sql, args = _TEXT_EXACT, (rank_q,)
    else:
        pool_size = max(p.text_pool, 1)
        tiers = text_pool_queries(lexemes, pool_size)
        sql, args = _TEXT, (tiers.singles[0], *tiers.pairs, PAIR_ROWS * pool_size, *tiers.triples, *tiers.singles,
                            pool_size, SCORED * pool_size)
    async with _Transaction(conn, _TEXT_SETTINGS.format(seq="on" if p.exact else "off")):
        if explain:
            return await _plan(conn, sql, tenant_id, store_ids, candidates, file_ids, *args)
        rows = await conn.fetch(sql, tenant_id, store_ids, candidates, file_ids, *args)
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
    async with pool.acquire() as conn:
        plans = [
            await _vector_list(conn, tenant_id, store_ids, candidates, vec, p, None, explain=True) if vec else "",
            await _text_list(conn, tenant_id, query, store_ids, candidates, p, None, explain=True)
            if p.mode != "vector" else "",
        ]
    return "\n".join(str(plan) for plan in plans if plan)
