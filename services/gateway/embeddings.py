"""``POST /v1/embeddings`` (OpenAI's schema) served by the RAG service's embedding model.

``input`` is a string or a list of strings; ``encoding_format`` ``float`` or ``base64`` (little-endian
float32, what the OpenAI SDK asks for by default); ``dimensions`` is refused unless it is the model's own.
Token-id inputs are refused: ids are tokenizer-specific and OpenAI's are not this model's.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import Field

from flotilla.embeddings import DIM
from flotilla.v1 import rag_pb2
from services.gateway import rag_api
from services.gateway.errors import OpenAIError
from services.gateway.protocol import OpenAIBaseModel

router = APIRouter()


class EmbeddingRequest(OpenAIBaseModel):
    model: str
    input: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


@router.post("/v1/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    rag_api.tenant_of(request)  # authenticates when the gateway has keys
    if isinstance(body.input, str):
        texts = [body.input]
    elif body.input and all(isinstance(x, str) for x in body.input):
        texts = list(body.input)  # type: ignore[arg-type]
    else:
        raise OpenAIError(400, "Token-id arrays are not supported for 'input' by this deployment; send text.",
                          param="input", code="invalid_value")
    if body.dimensions is not None and body.dimensions != DIM:
        raise OpenAIError(400, f"This model does not support 'dimensions' other than its own ({DIM}).",
                          param="dimensions", code="unsupported_parameter")
    resp = await rag_api.call(
        rag_api.rag_stub(request).Embed,
        rag_pb2.EmbedRequest(request_id=request.state.request_id, model=body.model, inputs=texts),
        rag_api.settings().rag_files_timeout_s,
    )
    vectors = np.frombuffer(resp.vectors, dtype="<f4").reshape(len(texts), resp.dim)
    if body.encoding_format == "base64":
        data = [base64.b64encode(v.tobytes()).decode() for v in vectors]
    else:
        data = [v.tolist() for v in vectors]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
        "model": resp.model,
        "usage": {"prompt_tokens": resp.prompt_tokens, "total_tokens": resp.prompt_tokens},
    }
