-- Renumbered 0002 -> 0003: 0002 is the API keys/quotas/ledger migration (versions must be unique).
-- Files and vector stores behind the OpenAI Files / Vector Stores APIs, owned by the RAG service.
CREATE TABLE rag_files (
    id           text        PRIMARY KEY,  -- file-<hex>
    tenant_id    text        NOT NULL,
    filename     text        NOT NULL,
    purpose      text        NOT NULL,
    content_type text        NOT NULL DEFAULT '',
    format       text        NOT NULL,     -- how the text was extracted: text, markdown, html, pdf
    bytes        bigint      NOT NULL,
    sha256       text        NOT NULL,
    content      bytea       NOT NULL,
    text         text        NOT NULL,     -- extracted at upload; chunk spans index into it
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rag_files_tenant_idx ON rag_files (tenant_id, created_at, id);

CREATE TABLE rag_vector_stores (
    id                 text        PRIMARY KEY,  -- vs_<hex>
    tenant_id          text        NOT NULL,
    name               text        NOT NULL DEFAULT '',
    metadata           jsonb       NOT NULL DEFAULT '{}',
    expires_after_days integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_active_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rag_vector_stores_tenant_idx ON rag_vector_stores (tenant_id, created_at, id);

CREATE TABLE rag_vector_store_files (
    vector_store_id      text        NOT NULL REFERENCES rag_vector_stores (id) ON DELETE CASCADE,
    file_id              text        NOT NULL REFERENCES rag_files (id) ON DELETE CASCADE,
    tenant_id            text        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled')),
    last_error_code      text,
    last_error_message   text,
    attributes           jsonb       NOT NULL DEFAULT '{}',
    max_chunk_tokens     integer     NOT NULL,
    chunk_overlap_tokens integer     NOT NULL,
    usage_bytes          bigint      NOT NULL DEFAULT 0,
    chunks               integer     NOT NULL DEFAULT 0,
    generation           integer     NOT NULL DEFAULT 1,  -- bumped by each (re-)attach; stale ingestions stop
    lease_until          timestamptz,                     -- an ingestion worker holds the job until then
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vector_store_id, file_id)
);
CREATE INDEX rag_vector_store_files_pending_idx ON rag_vector_store_files (lease_until) WHERE status = 'in_progress';
CREATE INDEX rag_vector_store_files_file_idx ON rag_vector_store_files (file_id);

-- Where each chunk lies in its file's extracted text (citations quote these spans).
ALTER TABLE rag_chunks ADD COLUMN start_char integer NOT NULL DEFAULT 0;
ALTER TABLE rag_chunks ADD COLUMN end_char integer NOT NULL DEFAULT 0;
CREATE INDEX rag_chunks_file_idx ON rag_chunks (file_id);
