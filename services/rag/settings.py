from typing import ClassVar, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings


class RagSettings(ServiceSettings):
    """RAG service settings; environment prefix ``FLOTILLA_RAG_``. The database is ``DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_RAG_", extra="ignore")
    service_name: ClassVar[str] = "rag"

    port: int = 50053
    database_url: str = Field(
        default="postgresql://postgres@localhost:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "FLOTILLA_RAG_DATABASE_URL"),
    )
    pool_min_size: int = 1
    pool_max_size: int = 10
    default_k: int = 5
    max_k: int = 50
    drain_grace_s: float = 10.0
    metrics_port: int = 9103  # Prometheus /metrics over HTTP; 0 disables

    # Retrieval: hybrid vector + full text, fused with reciprocal rank fusion.
    rrf_k: int = 60  # RRF's constant: score = sum 1 / (rrf_k + rank)
    candidates: int = 50  # each ranked list is cut at max(candidates, 4 k)
    hnsw_ef_search: int = 100  # pgvector's default 40 loses recall; see make bench-rag
    text_pool: int = 120  # the full-text pool: chunks per index conjunction (services/rag/retrieval.py)

    # Files and ingestion.
    max_file_bytes: int = 20 * 1024 * 1024  # must stay under the 64 MiB gRPC message limit
    chunk_max_tokens: int = 800  # OpenAI's static chunking defaults
    chunk_overlap_tokens: int = 400
    ingest_workers: int = 1  # concurrent ingestions per replica (embedding is CPU-bound)
    ingest_lease_s: float = 120.0  # a job whose worker vanished is taken over after this
    ingest_poll_s: float = 5.0  # how often idle workers look for jobs left by other replicas

    # Embeddings: the packaged MiniLM, or any OpenAI-compatible /v1/embeddings (a vLLM embedding model).
    embedding_backend: Literal["minilm", "openai"] = "minilm"
    embedding_url: str = ""  # openai backend: base URL ending in /v1
    embedding_model: str = ""  # openai backend: model name
    embedding_api_key: str = ""
    embed_threads: int = 0  # onnxruntime intra-op threads; 0: one per physical core (embedding is CPU-bound)
    embed_batch_size: int = 32
    embed_max_windows: int = 0  # 256-token windows embedded per chunk; 0: all (the vector sees the whole chunk)
    max_embed_inputs: int = 2048  # OpenAI's limit on inputs per /v1/embeddings request
