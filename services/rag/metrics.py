"""Prometheus metrics of the RAG service (served over HTTP on ``FLOTILLA_RAG_METRICS_PORT``, 9103 by default)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from flotilla.metrics import FAST_BUCKETS, SLOW_BUCKETS
from flotilla.metrics import serve as serve  # re-exported: services.rag.__main__ starts it

RETRIEVAL_SECONDS = Histogram(
    "flotilla_rag_retrieval_seconds", "Time to answer one Retrieve call (query embedding, search and fusion).",
    buckets=FAST_BUCKETS,
)
EMBEDDING_BATCH_SECONDS = Histogram(
    "flotilla_rag_embedding_batch_seconds", "Time to embed one batch of texts.", ["use"],  # query|ingest|api
    buckets=FAST_BUCKETS,
)
INGESTED_CHUNKS = Counter("flotilla_rag_ingested_chunks_total", "Chunks embedded and stored by ingestion.")
INGESTIONS = Counter("flotilla_rag_ingestions_total", "Attachments ingested, by outcome.", ["outcome"])
INGESTION_SECONDS = Histogram(
    "flotilla_rag_ingestion_seconds", "Time to ingest one attachment (chunking, embedding, storing).",
    buckets=SLOW_BUCKETS,
)
