"""``POST /v1/embeddings`` (OpenAI's schema) served by the RAG service's embedding model.

``input`` is a string or a list of strings; ``encoding_format`` ``float`` or ``base64`` (little-endian
float32, what the OpenAI SDK asks for by default); ``dimensions`` is refused unless it is the model's own.
Token-id inputs are refused: ids are tokenizer-specific and OpenAI's are not this model's.

With API keys on, an embeddings request is billed like a generation: the key's model list, request and token
quotas apply (admitted on a generous estimate, settled with the tokens the model really read) and the usage
ledger gets one row (endpoint ``embeddings``, prompt tokens only).
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
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
async def create_embeddings(body: EmbeddingRequest, request: Request) -> Response:
    if isinstance(body.input, str):
        texts = [body.input]
    elif body.input and all(isinstance(x, str) for x in body.input):
        texts = list(body.input)  # type: ignore[arg-type]
    else:
        texts = []
    access = getattr(request.app.state, "access", None)
    if access is None:  # a gateway without keys: the deployment's own tenant, nothing to bill
        rag_api.tenant_of(request)
        return JSONResponse(await _embed(body, texts, request))

    from services.gateway.access import Accounting, estimate_prompt_tokens
    from services.gateway.app import _accounted_call, _response_headers  # no import cycle

    key = access.authenticate(request)
    access.check_model(key, body.model)
    _check(body, texts)
    acct = request.state.acct = Accounting(key, "embeddings", body.model, request.state.request_id,
                                           id=f"emb-{uuid.uuid4().hex}")
    await access.admit(acct, estimate_prompt_tokens(texts))

    async def run() -> Response:
        result = await _embed(body, texts, request)
        acct.usage.prompt_tokens = result["usage"]["prompt_tokens"]
        return JSONResponse(result, headers=_response_headers(acct))

    return await _accounted_call(access, acct, run)


def _check(body: EmbeddingRequest, texts: list[str]) -> None:
    if not texts:
        raise OpenAIError(400, "Token-id arrays are not supported for 'input' by this deployment; send text.",
                          param="input", code="invalid_value")
    if body.dimensions is not None and body.dimensions != DIM:
        raise OpenAIError(400, f"This model does not support 'dimensions' other than its own ({DIM}).",
                          param="dimensions", code="unsupported_parameter")


async def _embed(body: EmbeddingRequest, texts: list[str], request: Request) -> dict[str, Any]:
    _check(body, texts)
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
