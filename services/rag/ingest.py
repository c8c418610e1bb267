"""Background ingestion: extracted text → token chunks with overlap → embeddings in batches → ``rag_chunks``.

The queue is the ``rag_vector_store_files`` table itself: an attachment ``in_progress`` whose lease is
free is claimed with ``FOR UPDATE SKIP LOCKED`` by one worker of one replica, which renews the lease
between embedding batches. A replica that dies leaves its lease to expire and another takes the job
over. Each (re-)attach bumps the attachment's ``generation``; the worker commits only if its generation
is still current, replacing the file's chunks in that store in one transaction — so re-attaching is
idempotent and a detach or delete racing an ingestion never leaves chunks behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from flotilla.embeddings import TextEmbedder
from services.rag import metrics
from services.rag.chunking import chunk_text

log = logging.getLogger(__name__)

_CLAIM = """
UPDATE rag_vector_store_files v SET lease_until = now() + make_interval(secs => $1)
FROM (SELECT vector_store_id, file_id FROM rag_vector_store_files
      WHERE status = 'in_progress' AND (lease_until IS NULL OR lease_until < now())
      ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED) j
WHERE v.vector_store_id = j.vector_store_id AND v.file_id = j.file_id
RETURNING v.vector_store_id, v.file_id, v.tenant_id, v.generation, v.max_chunk_tokens, v.chunk_overlap_tokens
"""

_RENEW = """
UPDATE rag_vector_store_files SET lease_until = now() + make_interval(secs => $4)
WHERE vector_store_id = $1 AND file_id = $2 AND generation = $3 AND status = 'in_progress' RETURNING 1
"""

_INSERT = """
INSERT INTO rag_chunks (tenant_id, vector_store_id, file_id, filename, chunk_index, text, embedding,
                        start_char, end_char)
SELECT $1, $2, $3, $4, u.i, u.t, u.e::vector, u.s, u.n
FROM unnest($5::int[], $6::text[], $7::text[], $8::int[], $9::int[]) AS u(i, t, e, s, n)
"""


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form, ``[x,y,...]``, bound as text and cast with ``::vector``."""
    return "[" + ",".join(f"{x:.7g}" for x in v.tolist()) + "]"


@dataclass(frozen=True)
class Job:
    vector_store_id: str
    file_id: str
    tenant_id: str
    generation: int
    max_tokens: int
    overlap: int


class Superseded(Exception):
    """The attachment was re-attached, detached or deleted while we worked on it."""


class Ingestor:
    def __init__(
        self, pool: asyncpg.Pool, embedder: TextEmbedder, tokenizer: Any, *, workers: int = 1,
        lease_s: float = 120.0, poll_s: float = 5.0, batch_size: int = 32,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.workers = workers
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.completed = 0  # jobs finished by this replica (tests and logs)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i), name=f"ingest-{i}") for i in range(self.workers)]

    def notify(self) -> None:
        """A job was queued: wake an idle worker now instead of at its next poll."""
        self._wake.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _worker(self, n: int) -> None:
        while True:
            self._wake.clear()
            try:
                job = await self._claim()
            except (OSError, asyncpg.PostgresError):
                log.exception("claiming an ingestion job failed")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                continue
            try:
                await self.process(job)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):  # hand the job back for another worker or replica
                    await asyncio.shield(self.pool.execute(
                        "UPDATE rag_vector_store_files SET lease_until = NULL WHERE vector_store_id = $1 AND "
                        "file_id = $2 AND generation = $3", job.vector_store_id, job.file_id, job.generation))
                raise

    async def _claim(self) -> Job | None:
        row = await self.pool.fetchrow(_CLAIM, self.lease_s)
        if row is None:
            return None
        return Job(row["vector_store_id"], row["file_id"], row["tenant_id"], row["generation"],
                   row["max_chunk_tokens"], row["chunk_overlap_tokens"])

    async def _renew(self, job: Job) -> None:
        if await self.pool.fetchval(_RENEW, job.vector_store_id, job.file_id, job.generation, self.lease_s) is None:
            raise Superseded

    async def process(self, job: Job) -> None:
        started = time.monotonic()
        extra = {"f_vector_store_id": job.vector_store_id, "f_file_id": job.file_id}
        try:
            n = await self._ingest(job)
        except Superseded:
            log.info("ingestion superseded", extra=extra)
            metrics.INGESTIONS.labels("superseded").inc()
            return
        except Exception as exc:  # the attachment fails with the reason; the worker goes on
            log.exception("ingestion failed", extra=extra)
            metrics.INGESTIONS.labels("failed").inc()
            await self.pool.execute(
                """UPDATE rag_vector_store_files SET status = 'failed', last_error_code = 'server_error',
                          last_error_message = $4, lease_until = NULL, updated_at = now()
                   WHERE vector_store_id = $1 AND file_id = $2 AND generation = $3""",
                job.vector_store_id, job.file_id, job.generation, f"{type(exc).__name__}: {exc}"[:500],
            )
            return
        self.completed += 1
        metrics.INGESTIONS.labels("completed").inc()
        metrics.INGESTED_CHUNKS.inc(n)
        metrics.INGESTION_SECONDS.observe(time.monotonic() - started)
        log.info("ingested", extra={**extra, "f_chunks": n, "f_seconds": round(time.monotonic() - started, 3)})

    async def _ingest(self, job: Job) -> int:
        row = await self.pool.fetchrow("SELECT filename, text FROM rag_files WHERE id = $1 AND tenant_id = $2",
                                       job.file_id, job.tenant_id)
        if row is None:
            raise Superseded
        chunks = await asyncio.to_thread(chunk_text, row["text"], self.tokenizer, job.max_tokens, job.overlap)
        vectors: list[np.ndarray] = []
        for start in range(0, len(chunks), self.batch_size):
            batch = [c.text for c in chunks[start : start + self.batch_size]]
            with metrics.EMBEDDING_BATCH_SECONDS.labels("ingest").time():
                vectors.append(await asyncio.to_thread(self.embedder.embed, batch))
            await self._renew(job)
        embedded = np.concatenate(vectors) if vectors else np.empty((0, self.embedder.dim), dtype=np.float32)
        literals = await asyncio.to_thread(lambda: [vector_literal(v) for v in embedded])
        usage = sum(len(c.text.encode()) for c in chunks) + 4 * self.embedder.dim * len(chunks)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                "SELECT generation FROM rag_vector_store_files WHERE vector_store_id = $1 AND file_id = $2 "
                "AND status = 'in_progress' FOR UPDATE",
                job.vector_store_id, job.file_id,
            )
            if current != job.generation:
                raise Superseded
            await conn.execute("DELETE FROM rag_chunks WHERE vector_store_id = $1 AND file_id = $2",
                               job.vector_store_id, job.file_id)
            await conn.execute(
                _INSERT, job.tenant_id, job.vector_store_id, job.file_id, row["filename"],
                [c.index for c in chunks], [c.text for c in chunks], literals,
                [c.start for c in chunks], [c.end for c in chunks],
            )
            await conn.execute(
                """UPDATE rag_vector_store_files SET status = 'completed', chunks = $3, usage_bytes = $4,
                          lease_until = NULL, updated_at = now()
                   WHERE vector_store_id = $1 AND file_id = $2""",
                job.vector_store_id, job.file_id, len(chunks), usage,
            )
        return len(chunks)
