"""Gateway: OpenAI-compatible HTTP API in front of the guard, RAG and inference services."""
