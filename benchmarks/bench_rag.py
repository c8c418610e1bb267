"""``make bench-rag``: ingestion throughput, retrieval latency and recall at scale, and answer grounding.

1. Ingestion: a generated corpus (~200 kB of prose-like text) through the real ingestion worker (chunking with
   OpenAI's 800/400 defaults, MiniLM int8 embeddings with one onnxruntime thread per core, pgvector + tsvector
   writes) → chunks/s, with the time of each phase; once embedding every 256-token window of a chunk (the
   default: the vector sees the whole chunk) and once only the first (FLOTILLA_RAG_EMBED_MAX_WINDOWS=1).
2. Scale: 10k and 100k synthetic chunks (clustered unit vectors, 40 random words of a 2,000-word vocabulary)
   in one store, HNSW index built, each size in a database of its own (``--pg-dir`` keeps them for later runs,
   ``--scale-only`` runs only this part), on the dev fleet's embedded Postgres and settings
   (``flotilla/pgembedded.py``); for N queries (a vector near the data; three words of one chunk plus two
   others): the service's own ``retrieve()`` as vector-only (at pgvector's default ``ef_search`` 40 and at
   ours), full-text-only and hybrid, each query run once to warm the caches (a service's steady state) and
   then timed — p50/p99 latency, and recall@5 against the same lists in exact mode (sequential-scan vector
   search, every full-text match ranked). On random words many chunks tie on ``ts_rank_cd`` and ties go to
   the lower id, so text and hybrid recall against exact also count which of equally ranked chunks came back.
3. Grounding: the small document set in ``benchmarks/data/rag`` ingested through the real fleet (default guard
   policies) with ``flotilla ingest``; each question of ``questions.jsonl`` asked through chat completions with
   ``vector_store_ids``: how often the right file is in the context, how often the answer cites it — separately
   by the model's own ``[n]`` markers and by the gateway's attribution of answer sentences to supporting chunks
   (used only when the model wrote no marker) — how often it cites a wrong file, and how often the answer
   contains the expected fact. ``--only-grounding`` runs just this part and keeps the other sections.

Results: ``benchmarks/results/rag.json``. Not a test: numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import numpy as np

from flotilla.embeddings import DIM, MiniLM
from flotilla.migrate import migrate
from services.rag.chunking import chunk_text
from services.rag.ingest import Ingestor, vector_literal
from services.rag.retrieval import RetrievalParams, retrieve

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "rag"
RESULTS = ROOT / "results" / "rag.json"
TENANT = "bench"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def words(rng: random.Random, vocab: list[str], n: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


# -- 1. ingestion ----------------------------------------------------------------------------------------


async def bench_ingestion(pool: asyncpg.Pool, target_bytes: int, max_windows: int, store: str) -> dict:
    """One file through the real ingestion worker; the model with one onnxruntime thread per core."""
    rng = random.Random(7)
    base = [p.read_text() for p in sorted(DATA.iterdir()) if p.suffix in (".md", ".txt")]
    sentences = [s.strip() + "." for text in base for s in text.replace("\n", " ").split(".") if s.strip()]
    text = ""
    while len(text) < target_bytes:
        text += " ".join(rng.sample(sentences, 6)) + "\n\n"
    model = MiniLM(threads=0, max_windows=max_windows)
    await pool.execute("INSERT INTO rag_files (id, tenant_id, filename, purpose, format, bytes, sha256, content, text) "
                       "VALUES ('file-bench', $1, 'corpus.txt', 'assistants', 'text', $2, '', ''::bytea, $3) "
                       "ON CONFLICT (id) DO NOTHING", TENANT, len(text), text)
    await pool.execute("INSERT INTO rag_vector_stores (id, tenant_id, name) VALUES ($1, $2, 'ingest')", store, TENANT)
    await pool.execute("INSERT INTO rag_vector_store_files (vector_store_id, file_id, tenant_id, status, "
                       "max_chunk_tokens, chunk_overlap_tokens) VALUES ($1, 'file-bench', $2, "
                       "'in_progress', 800, 400)", store, TENANT)
    ingestor = Ingestor(pool, model, model.tokenizer)
    job = await ingestor._claim()
    assert job is not None
    started = time.perf_counter()
    await ingestor.process(job)
    seconds = time.perf_counter() - started
    chunks = await pool.fetchval("SELECT chunks FROM rag_vector_store_files WHERE vector_store_id = $1", store)
    tokens = len(model.tokenizer.encode(text, add_special_tokens=False).ids)
    # Where the time goes, each phase alone on the same text.
    t0 = time.perf_counter()
    pieces = chunk_text(text, model.tokenizer, 800, 400)
    t1 = time.perf_counter()
    vectors = model.embed([c.text for c in pieces])
    t2 = time.perf_counter()
    [vector_literal(v) for v in vectors]
    t3 = time.perf_counter()
    ids = model.token_ids([c.text for c in pieces])
    windows = sum(min(len(model.windows(i)), max_windows or 10**9) for i in ids)
    return {"bytes": len(text), "tokens": tokens, "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1), "tokens_per_s": round(tokens / seconds),
            "chunking": "800/400 tokens", "embedder_threads": "one per core", "os_cpus": os.cpu_count(),
            "max_windows": max_windows or "all", "windows_embedded": windows,
            "phases_s": {"chunking": round(t1 - t0, 3), "embedding": round(t2 - t1, 2),
                         "vector_literals": round(t3 - t2, 3),
                         "database_and_rest": round(max(seconds - (t3 - t0), 0), 2)}}


# -- 2. scale --------------------------------------------------------------------------------------------


def synthetic(n: int, clusters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(size=(clusters, DIM)).astype(np.float32)
    assign = rng.integers(0, clusters, size=n)
    vectors = centers[assign] + rng.normal(scale=0.6, size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, centers


async def load(pool: asyncpg.Pool, store: str, vectors: np.ndarray, texts: list[str]) -> float:
    started = time.perf_counter()
    await pool.execute("DROP INDEX IF EXISTS rag_chunks_embedding_idx")
    for start in range(0, len(vectors), 5000):
        rows = range(start, min(start + 5000, len(vectors)))
        await pool.execute(
            "INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text, embedding) "
            "SELECT $1, $2, 'file-' || (u.i / 50), 'f.txt', u.i, u.t, u.e::vector "
            "FROM unnest($3::int[], $4::text[], $5::text[]) AS u(i, t, e)",
            TENANT, store, list(rows), [texts[i] for i in rows], [vector_literal(vectors[i]) for i in rows],
        )
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("CREATE INDEX rag_chunks_embedding_idx ON rag_chunks "
                           "USING hnsw (embedding vector_cosine_ops)")
        await conn.execute("ANALYZE rag_chunks")
    return time.perf_counter() - started


def recall_at(got: list, want: list) -> float:
    key = {(c.file_id, c.chunk_index) for c in want}
    return len({(c.file_id, c.chunk_index) for c in got} & key) / max(1, len(key))


async def bench_scale(pool: asyncpg.Pool, n: int, queries: int, ef_values: list[int], text_pool: int,
                      reuse: bool = False) -> dict:
    """The service's own ``retrieve()`` in its three modes (vector only, full text only, hybrid), each against
    the same statement in exact mode (sequential-scan vector search, every full-text match ranked). With
    ``reuse`` the data set is kept when the database already holds it (``--pg-dir``)."""
    rng = np.random.default_rng(n)
    wrng = random.Random(n)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "su", "te", "ra", "no", "vi") for b in range(250)]
    vectors, centers = synthetic(n, max(20, n // 500), rng)
    texts = [words(wrng, vocab, 40) for _ in range(n)]
    store = f"vs_{n}"
    have = await pool.fetchval("SELECT count(*) FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id = $2",
                               TENANT, store)
    if reuse and have == n:
        load_s = None
    else:
        await pool.execute("DELETE FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id NOT LIKE 'vs_ingest%'",
                           TENANT)
        load_s = round(await load(pool, store, vectors, texts), 1)
    picks = rng.integers(0, len(centers), size=queries)
    qv = centers[picks] + rng.normal(scale=0.6, size=(queries, DIM)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    # Text queries: three words of one chunk (what a user remembers of it) and two others of the vocabulary.
    qt = [" ".join([*wrng.sample(texts[int(i)].split(), 3), wrng.choice(vocab), wrng.choice(vocab)])
          for i in rng.integers(0, n, size=queries)]
    out: dict = {"chunks": n, "load_and_index_s": load_s, "queries": queries, "k": 5, "text_pool": text_pool}
    runs = [("vector", ef) for ef in ef_values] + [("text", ef_values[-1]), ("hybrid", ef_values[-1])]
    for mode, ef in runs:
        exact_p = RetrievalParams(mode=mode, exact=True)
        params = RetrievalParams(mode=mode, ef_search=ef, text_pool=text_pool)
        exact, exact_lat = [], []
        for t, v in zip(qt, qv, strict=True):
            started = time.perf_counter()
            exact.append(await retrieve(pool, TENANT, t, [store], 5, v, exact_p))
            exact_lat.append(time.perf_counter() - started)
        for t, v in zip(qt, qv, strict=True):  # a service's steady state: its indexes in shared buffers
            await retrieve(pool, TENANT, t, [store], 5, v, params)
        hits, lat = [], []
        for t, v, want in zip(qt, qv, exact, strict=True):
            started = time.perf_counter()
            got = await retrieve(pool, TENANT, t, [store], 5, v, params)
            lat.append(time.perf_counter() - started)
            hits.append(recall_at(got, want))
        name = mode if mode != "vector" or ef == ef_values[-1] else f"vector_ef_search_{ef}"
        out[name] = {"ef_search": ef, "p50_ms": round(percentile(lat, 50) * 1000, 2),
                     "p99_ms": round(percentile(lat, 99) * 1000, 2), "recall_at_5": round(statistics.fmean(hits), 4),
                     "exact_p50_ms": round(percentile(exact_lat, 50) * 1000, 2)}
        print(name, json.dumps(out[name]), flush=True)
    return out


async def scale_database(url: str, n: int) -> str:
    """A database of its own for the ``n``-chunk data set on the benchmark's server (kept with ``--pg-dir``)."""
    conn = await asyncpg.connect(url)
    try:
        name = f"bench_{n}"
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    base, sep, query = url.partition("?")
    return f"{base.rpartition('/')[0]}/{name}{sep}{query}"


# -- 3. grounding ----------------------------------------------------------------------------------------


def bench_grounding(database_url: str) -> dict:
    import openai

    from flotilla.devfleet import DevFleet, FleetConfig
    from flotilla.guardpolicy import PLACEHOLDER
    from services.gateway.citations import CONTEXT_HEADER
    from services.guard.settings import GuardSettings
    from tests.conftest import free_port

    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as home:
        config = FleetConfig(home=Path(home), ports={n: free_port() for n in ("gateway", "inference", "guard", "rag")},
                             database_url=database_url,
                             model_dir=ROOT.parent / ".flotilla" / "models" / "SmolLM2-135M-Instruct")
        from services.inference.prepare import prepare_smollm2

        prepare_smollm2(config.model_dir)
        with DevFleet(config) as fleet:
            key = getattr(fleet, "api_key", "") or "unused"
            folder = Path(home) / "docs"
            folder.mkdir()
            for p in DATA.iterdir():
                if p.suffix != ".jsonl":
                    (folder / p.name).write_bytes(p.read_bytes())
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "flotilla.cli", "ingest", str(folder), "--store", "grounding",
                                  "--base-url", config.base_url, "--api-key", key, "--quiet"],
                                 capture_output=True, text=True, check=True)
            ingest_s = time.perf_counter() - started
            client = openai.OpenAI(base_url=config.base_url, api_key=key, max_retries=0)
            store = next(s for s in client.vector_stores.list() if s.name == "grounding")
            rows = []
            for q in questions:
                t0 = time.perf_counter()
                resp = client.chat.completions.create(
                    model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": q["question"]}],
                    max_tokens=48, temperature=0, extra_body={"vector_store_ids": [store.id]})
                seconds = time.perf_counter() - t0
                context = resp.model_extra.get("search_results") or []
                cites = resp.model_extra.get("citations") or []
                answer = resp.choices[0].message.content or ""
                by = {c["cited_by"] for c in cites}
                rows.append({"question": q["question"], "expected_file": q["file"],
                             "context_files": [c["filename"] for c in context],
                             "top_file": context[0]["filename"] if context else None,
                             "cited_by": by.pop() if by else None,  # one mechanism per answer
                             "citations": [{"file": c["filename"], "source": c["index"], "by": c["cited_by"],
                                            "support": c["support"]} for c in cites],
                             "cited_files": sorted({c["filename"] for c in cites}), "answer": answer,
                             "answer_has_fact": q["answer"].lower() in answer.lower(), "seconds": round(seconds, 2)})
    n = len(rows)

    def share(rows_: list[dict], test) -> float:
        return round(sum(bool(test(r)) for r in rows_) / max(1, len(rows_)), 3)

    def right(r: dict) -> bool:
        return r["expected_file"] in r["cited_files"]

    def wrong(r: dict) -> bool:
        return bool(set(r["cited_files"]) - {r["expected_file"]})

    marked = [r for r in rows if r["cited_by"] == "model"]
    attributed = [r for r in rows if r["cited_by"] == "attribution"]
    return {
        "questions": n, "ingest_cli_s": round(ingest_s, 1), "ingest_output": out.stdout.strip(),
        "prompt": CONTEXT_HEADER + " Then 'Source [n] (filename):' and the chunk text, per chunk (system message).",
        "guard_policies": {"input": GuardSettings().input_policy, "output": GuardSettings().output_policy},
        "right_file_first_in_context": share(rows, lambda r: r["top_file"] == r["expected_file"]),
        "right_file_in_context": share(rows, lambda r: r["expected_file"] in r["context_files"]),
        # Any mechanism: the "share of answers that cite the right file" (and of those citing another).
        "cites_right_file": share(rows, right),
        "cites_a_wrong_file": share(rows, wrong),
        "cites_nothing": share(rows, lambda r: not r["cited_files"]),
        # The model's own [n] markers (they take precedence).
        "model_wrote_marker": share(rows, lambda r: r["cited_by"] == "model"),
        "model_marker_right_file": share(rows, lambda r: r["cited_by"] == "model" and right(r)),
        "model_marker_right_file_when_written": share(marked, right),
        # The right file is source [1] for every question here, so a model that always wrote [1] would score 1.0.
        "model_markers_naming_source_1": share(marked, lambda r: {c["source"] for c in r["citations"]} == {1}),
        # The gateway's attribution (only for answers without a marker).
        "attributed": share(rows, lambda r: r["cited_by"] == "attribution"),
        "attributed_right_file": share(rows, lambda r: r["cited_by"] == "attribution" and right(r)),
        "attributed_right_file_when_attributed": share(attributed, right),
        "answer_contains_fact": share(rows, lambda r: r["answer_has_fact"]),
        "answer_contains_fact_and_cites_right_file": share(rows, lambda r: r["answer_has_fact"] and right(r)),
        "answers_with_a_placeholder": share(rows, lambda r: PLACEHOLDER.search(r["answer"])),  # e.g. [PERSON_1]
        "rows": rows,
    }


async def main_async(args: argparse.Namespace, database_url: str) -> dict:
    await migrate(database_url)
    results: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version()}}
    if not args.scale_only:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            results["ingestion"] = await bench_ingestion(pool, args.ingest_bytes, 0, "vs_ingest")
            print("ingestion", json.dumps(results["ingestion"]), flush=True)
            results["ingestion_first_window_only"] = await bench_ingestion(pool, args.ingest_bytes, 1, "vs_ingest1")
            print("ingestion_first_window_only", json.dumps(results["ingestion_first_window_only"]), flush=True)
        finally:
            await pool.close()
    results["scale"] = []
    for n in args.sizes:  # each size in a database of its own, kept between runs with --pg-dir
        url = await scale_database(database_url, n)
        await migrate(url)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=4)  # the two lists run concurrently
        try:
            r = await bench_scale(pool, n, args.queries, [40, args.ef_search], args.text_pool, args.pg_dir is not None)
        finally:
            await pool.close()
        results["scale"].append(r)
        print("scale", json.dumps(r), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef-search", type=int, default=100,
                        help="the RAG service's setting (FLOTILLA_RAG_HNSW_EF_SEARCH)")
    parser.add_argument("--text-pool", type=int, default=120,
                        help="the RAG service's setting (FLOTILLA_RAG_TEXT_POOL)")
    parser.add_argument("--ingest-bytes", type=int, default=200_000)
    parser.add_argument("--no-grounding", action="store_true", help="skip the part that starts the fleet")
    parser.add_argument("--reuse-grounding", action="store_true",
                        help="skip the fleet and keep the grounding section of the existing results file")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the retrieval-scale part; the other sections of the results file are kept")
    parser.add_argument("--only-grounding", action="store_true",
                        help="run only the grounding part and keep the other sections of the existing results file")
    parser.add_argument("--pg-dir", type=Path, default=None,
                        help="keep the embedded Postgres (and the scale data sets, ~155 s to load at 100k) in this "
                             "directory and reuse them in later runs; default: a temporary one")
    args = parser.parse_args()
    if args.only_grounding:
        return only_grounding()
    from flotilla import pgembedded

    with tempfile.TemporaryDirectory() as tmp:  # the dev fleet's embedded Postgres and its settings
        if args.pg_dir is not None:
            pg = pgembedded.start(args.pg_dir.resolve(), cleanup_mode="stop")
        else:
            pg = pgembedded.start(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            url = pg.get_uri()
            results = asyncio.run(main_async(args, url))
            previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            if args.scale_only:  # this run's sizes replace theirs; the other sections and sizes stay
                sizes = {r["chunks"] for r in results["scale"]}
                kept = [r for r in previous.get("scale", []) if r["chunks"] not in sizes]
                loaded = {r["chunks"]: r.get("load_and_index_s") for r in previous.get("scale", [])}
                for r in results["scale"]:  # a data set kept with --pg-dir: its load time from the run that built it
                    if r["load_and_index_s"] is None:
                        r["load_and_index_s"] = loaded.get(r["chunks"])
                results = {**previous, **results, "scale": sorted(kept + results["scale"], key=lambda r: r["chunks"])}
            elif args.reuse_grounding and RESULTS.exists():
                if previous.get("grounding") is not None:
                    results["grounding"] = previous["grounding"]
            elif not args.no_grounding:
                results["grounding"] = bench_grounding(url)
                g = {k: v for k, v in results["grounding"].items() if k != "rows"}
                print("grounding", json.dumps(g), flush=True)
        finally:
            pg.cleanup()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def only_grounding() -> int:
    from flotilla import pgembedded

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        pg = pgembedded.start(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            asyncio.run(migrate(pg.get_uri()))
            results["grounding"] = bench_grounding(pg.get_uri())
        finally:
            pg.cleanup()
    print("grounding", json.dumps({k: v for k, v in results["grounding"].items() if k != "rows"}), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS} (grounding only; the other sections kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
