"""RAG service: files, vector stores, ingestion, embeddings and hybrid retrieval over Postgres + pgvector."""
