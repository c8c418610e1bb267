"""RAG service: retrieval over Postgres + pgvector (ingestion and embeddings grow in the RAG issue)."""
