-- Chunks retrieved by the RAG service: pgvector embeddings (all-MiniLM-L6-v2, 384 dims) and full text.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE rag_chunks (
    id              bigserial PRIMARY KEY,
    tenant_id       text        NOT NULL,
    vector_store_id text        NOT NULL,
    file_id         text        NOT NULL,
    filename        text        NOT NULL,
    chunk_index     integer     NOT NULL,
    text            text        NOT NULL,
    embedding       vector(384),
    tsv             tsvector    GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vector_store_id, file_id, chunk_index)
);

CREATE INDEX rag_chunks_store_idx ON rag_chunks (tenant_id, vector_store_id);
CREATE INDEX rag_chunks_tsv_idx ON rag_chunks USING gin (tsv);
CREATE INDEX rag_chunks_embedding_idx ON rag_chunks USING hnsw (embedding vector_cosine_ops);
