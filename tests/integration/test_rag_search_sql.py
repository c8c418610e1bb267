"""The hybrid search statement against real Postgres 18 + pgvector: the indexes it uses (EXPLAIN), the same
ranking as the single-statement search it replaced on a small fixed corpus, and the bounded full-text pool."""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

import asyncpg
import numpy as np
import pytest

from services.rag.retrieval import (
    RetrievalParams,
    TextPool,
    explain,
    fuse,
    rank_query,
    retrieve,
    text_pool_queries,
)

TENANT = "t-sql"

# The search before the bounded full-text pool (every match of any lexeme ranked with ts_rank_cd): the
# reference the new statement must agree with wherever a query matches no more chunks than the pool holds.
# One bug of it is fixed here as in the service: it fed the query's lexemes back through to_tsquery('english'),
# which stemmed them again ('expense' -> 'expens' -> 'expen') so that such words never matched.
LEGACY = """
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
    SELECT (SELECT string_agg(quote_literal(l), ' | ') FROM unnest(tsvector_to_array(to_tsvector('english', $1))) l
           )::tsquery AS query
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
SELECT c.file_id, c.chunk_index, (f.rrf * ($7 + 1) / 2.0)::real AS score
FROM fused f JOIN rag_chunks c ON c.id = f.id
ORDER BY f.rrf DESC, c.id
LIMIT $8
"""

WORDS = ("harbor lighthouse keeper storm granite cliff lantern beacon ship fog bakery bread flour oven rye "
         "croissant volcano crater lake eruption ash garden cactus glasshouse orchid policy hotel travel expense "
         "receipt manager").split()
QUERIES = [
    "Who kept the lighthouse lantern during the storm?", "bread from the rye oven", "volcano crater lake",
    "hotel expense receipt policy", "cactus and orchid in the glasshouse", "fog", "granite cliff beacon ship",
    "manager travel", "nothing matches zzqx",
]


def vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
async def pool(postgres_url: str):
    rng = np.random.default_rng(11)
    words = random.Random(11)
    rows = []
    for store, files in (("vs_a", 3), ("vs_b", 2)):
        for f, i in itertools.product(range(files), range(6)):
            text = " ".join(words.choice(WORDS) for _ in range(words.randint(5, 25))) + "."
            rows.append((TENANT, store, f"file-{store}-{f}", f"{store}-{f}.md", i, text,
                         "[" + ",".join(f"{x:.7g}" for x in vector(rng)) + "]"))
    rows.append(("t-other", "vs_a", "file-x", "x.md", 0, "lighthouse keeper storm fog", None))
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("DELETE FROM rag_chunks WHERE tenant_id IN ($1, 't-other', 't-pool', 't-tier')", TENANT)
    await conn.executemany(
        "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text, embedding) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::vector)",
        rows,
    )
    await conn.close()
    p = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def legacy(pool: asyncpg.Pool, query: str, stores: list[str], k: int, vec: np.ndarray | None,
                 file_ids: list[str] | None) -> list[tuple[str, int, float]]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.ef_search = 100; SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = await conn.fetch(LEGACY, query, TENANT, stores, max(50, 4 * k), None if vec is None else vec.tolist(),
                                file_ids, 60, k)
    return [(r["file_id"], r["chunk_index"], round(float(r["score"]), 5)) for r in rows]


@pytest.mark.parametrize("mode", ["hybrid", "text"])
async def test_same_ranking_as_the_previous_search(pool: asyncpg.Pool, mode: str) -> None:
    rng = np.random.default_rng(5)
    compared = 0
    for query, stores, k, files in itertools.product(
        QUERIES, (["vs_a"], ["vs_a", "vs_b"]), (1, 5, 12), (None, ["file-vs_a-1", "file-vs_b-2"])
    ):
        vec = vector(rng) if mode == "hybrid" else None
        want = await legacy(pool, query, stores, k, vec, files)
        got = await retrieve(pool, TENANT, query, stores, k, vec, RetrievalParams(), files)
        assert [(c.file_id, c.chunk_index, round(c.score, 5)) for c in got] == want, (query, stores, k, files)
        compared += bool(want)
    assert compared > 40  # the corpus really answers most of these


async def test_tenant_store_and_threshold_are_kept(pool: asyncpg.Pool) -> None:
    got = await retrieve(pool, TENANT, "lighthouse keeper storm fog", ["vs_a"], 50)
    assert got and all(c.vector_store_id == "vs_a" and c.file_id != "file-x" for c in got)
    high = await retrieve(pool, TENANT, "lighthouse keeper storm fog", ["vs_a"], 50,
                          params=RetrievalParams(score_threshold=got[2].score))
    assert [c.file_id for c in high] == [c.file_id for c in got if c.score >= got[2].score]


async def test_stemmed_words_match_once(pool: asyncpg.Pool) -> None:
    """'expense' is stemmed once ('expens'), as in the chunks' tsv, so the full-text list finds it."""
    got = await retrieve(pool, TENANT, "expense", ["vs_a", "vs_b"], 50, params=RetrievalParams(mode="text"))
    assert got and all("expense" in c.text for c in got)


def test_queries_quote_lexemes() -> None:
    assert rank_query([]) is None and rank_query([""]) is None
    assert rank_query(["fog"]) == "'fog'"
    assert rank_query(["it's", "a\\b"]) == "'it''s' | 'a\\\\b'"
    tiers = text_pool_queries(["it's", "a\\b", "c"], 20)
    assert tiers.singles[0] == ["'it''s'", "'a\\\\b'", "'c'"]
    assert tiers.pairs[0] == ["'it''s' & 'a\\\\b'", "'it''s' & 'c'", "'a\\\\b' & 'c'"]


async def test_bounded_text_pool_puts_chunks_with_every_lexeme_first(pool: asyncpg.Pool) -> None:
    """Far more chunks match a lexeme than the pool holds: the one chunk with every lexeme still ranks first,
    though it was written last; so does the one chunk with a rare lexeme (an id) when no chunk has them all,
    and the one chunk with two common lexemes of three; exact mode ranks the same way from every match."""
    conn = await pool.acquire()
    try:
        await conn.executemany(
            "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text) "
            "VALUES ('t-pool', 'vs_p', $1, 'p.md', $2, $3)",
            [(f"file-{i}", 0, f"harbor note {i}") for i in range(300)]
            + [(f"file-l{i}", 0, f"lighthouse watch {i}") for i in range(300)]
            + [("file-last", 0, "harbor lighthouse keeper")],
        )
    finally:
        await pool.release(conn)
    for params in (RetrievalParams(mode="text", text_pool=20), RetrievalParams(mode="text", exact=True)):
        got = await retrieve(pool, "t-pool", "harbor lighthouse keeper", ["vs_p"], 3, params=params)
        assert got[0].file_id == "file-last", params
        got = await retrieve(pool, "t-pool", "harbor 250", ["vs_p"], 3, params=params)
        assert got[0].file_id == "file-250", params
        got = await retrieve(pool, "t-pool", "harbor lighthouse zzz", ["vs_p"], 3, params=params)
        assert got[0].file_id == "file-last", params  # two of three common lexemes: only the second tier has it


def test_text_pool_queries_tiers() -> None:
    assert text_pool_queries([], 120) == TextPool(([], []), ([], []), ([], []))
    assert text_pool_queries(["a"], 120) == TextPool(([], []), ([], []), (["'a'"], [120]))
    assert text_pool_queries(["a", "b", "a"], 120) == TextPool((["'a' & 'b'"], [120]), ([], []),
                                                                (["'a'", "'b'"], [60, 60]))
    assert text_pool_queries(["a", "b", "c", "d"], 120) == TextPool(
        (["'a' & 'b'", "'a' & 'c'", "'a' & 'd'", "'b' & 'c'", "'b' & 'd'", "'c' & 'd'"], [120] * 6),  # each two
        (["'a' & 'b' & 'c' & 'd'",  # every lexeme, then each three
          "'a' & 'b' & 'c'", "'a' & 'b' & 'd'", "'a' & 'c' & 'd'", "'b' & 'c' & 'd'"], [120] + [30] * 4),
        (["'a'", "'b'", "'c'", "'d'"], [30] * 4))  # each one
    pool = text_pool_queries([f"w{i}" for i in range(12)], 120)  # pairs of the first 10, triples of the first 6
    assert len(pool.pairs[0]) == 45 and pool.pairs[1] == [120] * 45
    assert len(pool.triples[0]) == 1 + 20 and pool.triples[1] == [120] + [10] * 20
    assert pool.singles[1] == [10] * 12


def test_fuse_is_reciprocal_rank_fusion() -> None:
    # 7: first in both lists (1.0); 3 and 9 tie at 1/61 (lower id first); 5 is second in one list only.
    assert fuse([[7, 3, 5], [7, 9]], 60, 4) == [(7, 1.0), (3, pytest.approx(61 / 62 / 2)),
                                               (9, pytest.approx(61 / 62 / 2)), (5, pytest.approx(61 / 63 / 2))]
    assert fuse([[], []], 60, 5) == []


def test_fuse_compares_sums_exactly() -> None:
    """The integer sums rank and score exactly like rational arithmetic, ties (equal sums from different
    ranks) included."""

    def reference(lists: list[list[int]], rrf_k: int, k: int) -> list[tuple[int, float]]:
        totals: dict[int, Fraction] = {}
        for ranked in lists:
            for rank, chunk_id in enumerate(ranked, 1):
                totals[chunk_id] = totals.get(chunk_id, Fraction(0)) + Fraction(1, rrf_k + rank)
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [(i, float(np.float32(float(rrf * (rrf_k + 1) / 2)))) for i, rrf in best]

    rng = random.Random(4)
    for _ in range(500):
        ids = range(rng.randint(1, 150))
        lists = [rng.sample(ids, rng.randint(0, min(len(ids), 60))) for _ in range(rng.randint(1, 3))]
        rrf_k, k = rng.choice([0, 1, 60]), rng.choice([1, 5, 200])
        assert fuse(lists, rrf_k, k) == reference(lists, rrf_k, k), (lists, rrf_k, k)
    # Two chunks whose ranks differ but whose sums are equal: they tie, and the lower id comes first.
    pairs = [(a, b) for a in range(1, 51) for b in range(a, 51)]
    sums: dict[Fraction, list[tuple[int, int]]] = {}
    for a, b in pairs:
        sums.setdefault(Fraction(1, 60 + a) + Fraction(1, 60 + b), []).append((a, b))
    (a, b), (c, d) = next(v[:2] for v in sums.values() if len(v) > 1)
    first, second = [0] * 50, [0] * 50  # chunk 1 at ranks (a, b), chunk 2 at ranks (c, d); fillers elsewhere
    filler = iter(range(100, 1000))
    for ranked, r1, r2 in ((first, a, c), (second, b, d)):
        for i in range(50):
            ranked[i] = 1 if i + 1 == r1 else 2 if i + 1 == r2 else next(filler)
    got = [i for i, _ in fuse([first, second], 60, 100) if i in (1, 2)]
    assert got == [1, 2] and fuse([first, second], 60, 100) == reference([first, second], 60, 100)


async def test_chunks_with_more_lexemes_win_when_pairs_overflow_the_pool(pool: asyncpg.Pool) -> None:
    """Hundreds of chunks have two of the query's five lexemes, far more than the pool holds; the chunks
    with three and with four of them (written last) are still read first and rank first, as in exact mode."""
    conn = await pool.acquire()
    try:
        await conn.executemany(
            "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text) "
            "VALUES ('t-tier', 'vs_t', $1, 't.md', 0, $2)",
            [(f"file-{i}", f"{a} {b} filler{i}") for i, (a, b) in enumerate(
                itertools.islice(itertools.cycle(itertools.combinations(
                    ["amber", "basil", "cedar", "delta", "ember"], 2)), 400))]
            + [("file-three", "amber cedar ember rest"), ("file-four", "basil cedar delta ember")],
        )
    finally:
        await pool.release(conn)
    want = ["file-four", "file-three"]
    for params in (RetrievalParams(mode="text", text_pool=20), RetrievalParams(mode="text", exact=True),
                   RetrievalParams(text_pool=20)):
        got = await retrieve(pool, "t-tier", "amber basil cedar delta ember", ["vs_t"], 2, params=params)
        assert [c.file_id for c in got] == want, params


async def test_concurrent_lists_on_a_pool_of_one_connection(postgres_url: str, pool: asyncpg.Pool) -> None:
    """The two lists run concurrently on two pooled connections; a pool of one runs them in turn, same answer."""
    rng = np.random.default_rng(9)
    one = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
    try:
        for query in QUERIES:
            vec = vector(rng)
            got = await retrieve(one, TENANT, query, ["vs_a", "vs_b"], 5, vec)
            want = await retrieve(pool, TENANT, query, ["vs_a", "vs_b"], 5, vec)
            assert [(c.file_id, c.chunk_index, c.score) for c in got] == [
                (c.file_id, c.chunk_index, c.score) for c in want]
    finally:
        await one.close()


async def test_explain_uses_the_gin_and_hnsw_indexes(postgres_url: str, pool: asyncpg.Pool) -> None:
    """With enough chunks that scanning the table costs more, the statement the service runs reads the
    full-text list through the GIN index on ``tsv``, and neither list scans the whole table."""
    rng = np.random.default_rng(3)
    words = random.Random(3)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = 't-big'")
        await conn.execute(
            "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text, embedding) "
            "SELECT 't-big', 'vs_big', 'file-' || (u.i / 20), 'big.md', u.i, u.t, u.e::vector "
            "FROM unnest($1::int[], $2::text[], $3::text[]) AS u(i, t, e)",
            list(range(3000)),
            [" ".join(words.choice(WORDS) for _ in range(12)) + f" w{i}" for i in range(3000)],
            ["[" + ",".join(f"{x:.5g}" for x in vector(rng)) + "]" for _ in range(3000)],
        )
        await conn.execute("ANALYZE rag_chunks")
        plan = await explain(pool, "t-big", "w17 w2345", ["vs_big"], 5, vector(rng))
        assert "Bitmap Index Scan on rag_chunks_tsv_idx" in plan, plan
        # The vector list: the HNSW index, or (the planner's choice for a few thousand chunks) the store's index
        # and exact distances; never a scan of every tenant's chunks.
        assert "rag_chunks_embedding_idx" in plan or "Bitmap Index Scan on rag_chunks_store_idx" in plan, plan
        assert "Seq Scan on rag_chunks" not in plan, plan  # rare lexemes: never a scan of the table
        got = await retrieve(pool, "t-big", "w17 w2345", ["vs_big"], 5, params=RetrievalParams(mode="text"))
        assert [c.chunk_index for c in got] == [17, 2345]
    finally:
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = 't-big'")
        await conn.close()


async def test_occurrences_order_chunks_like_ts_rank_cd(pool: asyncpg.Pool) -> None:
    """The pool's score, the sum of ``ts_rank_cd`` of each lexeme alone, is ``ts_rank_cd`` of the whole OR query
    (0.1 per occurrence) on varied text: repeated and stemmed words, punctuation, numbers, long chunks."""
    rng = random.Random(8)
    vocab = [*WORDS, "running", "runs", "ran", "e-mail", "a.b@example.com", "2024", "it's", "self-service"]
    texts = [" ".join(rng.choice(vocab) + rng.choice(["", ",", ".", "!"]) for _ in range(rng.randint(1, 1500)))
             for _ in range(30)]
    texts += ["storm storm storm storm", "storm, storm. Storms! stormy", "fog " * 500]
    queries = ["storm fog lantern", "running storms", "e-mail 2024 self-service it's", "fog", "harbor ship ship"]
    for query in queries:
        lexemes = await pool.fetchval("SELECT tsvector_to_array(to_tsvector('english', $1))", query)
        any_q, ops = rank_query(lexemes), text_pool_queries(lexemes, 1).singles[0]
        rows = await pool.fetch(
            "WITH d AS MATERIALIZED (SELECT to_tsvector('english', t) AS v FROM unnest($3::text[]) t) "
            "SELECT round(10 * ts_rank_cd(v, $1::tsquery))::int AS whole, "
            "(SELECT sum(round(10 * ts_rank_cd(v, l)))::int FROM unnest($2::tsquery[]) l) AS summed FROM d",
            any_q, ops, texts,
        )
        assert [r["whole"] for r in rows] == [r["summed"] for r in rows], query
        assert max(r["whole"] for r in rows) > 3, query  # repeated words really counted


def _unread_scans(plan: str) -> int:
    """How many of the pool's reads of rag_chunks never ran."""
    return sum(1 for line in plan.splitlines()
               if re.search(r" on rag_chunks c(_\d+)? ", line) and "(never executed)" in line)


async def test_later_tiers_are_read_only_when_needed(pool: asyncpg.Pool) -> None:
    """Pairs under their limit and at least ``text_pool`` chunks with two lexemes: neither the three-lexeme tier
    nor the one-lexeme tier is read, and the ranking is exact mode's. A pair cut at its limit reads the
    three-lexeme tier; few chunks with two lexemes read the one-lexeme tier."""
    conn = await pool.acquire()
    try:
        await conn.execute("DELETE FROM rag_chunks WHERE tenant_id = 't-lazy'")
        rows = [(f"file-{a}{b}{i}", f"{a} {b} {a if i % 4 == 3 else ''} note{i}")  # 9 chunks per pair, some with
                for a, b in itertools.combinations(["ivy", "juniper", "kelp"], 2) for i in range(9)]  # a repeat
        rows += [(f"file-lm{i}", f"larch maple note{i}") for i in range(12)]  # 12 >= the pair limit of 10
        rows += [("file-rare", "rowan rowan rowan sorrel")]
        await conn.executemany("INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, "
                               "text) VALUES ('t-lazy', 'vs_l', $1, 'l.md', 0, $2)", rows)
    finally:
        await pool.release(conn)
    params = RetrievalParams(mode="text", text_pool=10)
    exact = RetrievalParams(mode="text", exact=True)
    plan = await explain(pool, "t-lazy", "ivy juniper kelp", ["vs_l"], 5, params=params)
    assert _unread_scans(plan) == 2, plan  # 27 chunks with two lexemes, no pair at its limit of 10
    got = await retrieve(pool, "t-lazy", "ivy juniper kelp", ["vs_l"], 20, params=params)
    want = await retrieve(pool, "t-lazy", "ivy juniper kelp", ["vs_l"], 20, params=exact)
    assert [c.file_id for c in got] == [c.file_id for c in want]
    assert got[0].file_id == "file-ivyjuniper3"  # a lexeme twice: three occurrences, first
    plan = await explain(pool, "t-lazy", "larch maple ivy", ["vs_l"], 5, params=params)
    assert _unread_scans(plan) == 1, plan  # larch & maple cut at 10: every lexeme read; 10 chunks: no singles
    plan = await explain(pool, "t-lazy", "sorrel rowan", ["vs_l"], 5, params=params)
    assert _unread_scans(plan) == 1, plan  # one chunk with both, fewer than 10: each lexeme alone is read
    got = await retrieve(pool, "t-lazy", "sorrel rowan", ["vs_l"], 3, params=params)
    assert [c.file_id for c in got] == ["file-rare"]
