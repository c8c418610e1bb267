"""The gateway's RAG-facing OpenAI routes in one router: Files, Vector Stores, Embeddings and Responses."""

from fastapi import APIRouter

from services.gateway import embeddings, files, responses, vector_stores
from services.gateway.rag_api import body_limits

router = APIRouter()
for _module in (files, vector_stores, embeddings, responses):
    router.include_router(_module.router)

__all__ = ["body_limits", "router"]
