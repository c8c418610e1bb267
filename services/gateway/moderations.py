"""``POST /v1/moderations``: OpenAI's moderation schema, answered by the guard's scanners.

``categories`` / ``category_scores`` carry OpenAI's names; the ones the guard models are ``harassment``,
``hate``, ``violence``, ``self-harm`` and ``sexual`` (a MiniLM head); sub-categories such as
``hate/threatening`` are not modelled and are reported as ``false`` / 0. Our own categories come alongside:
``prompt_injection``, ``pii``, ``secrets`` and ``profanity``. ``flagged`` uses the thresholds of the
request's input policy.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flotilla.v1 import guard_pb2
from services.gateway.errors import OpenAIError, from_grpc

router = APIRouter()

OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)  # fmt: skip
FLOTILLA_CATEGORIES = ("prompt_injection", "pii", "secrets", "profanity")
DEFAULT_MODEL = "flotilla-guard"
MAX_INPUTS = 32


class TextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    text: str | None = None


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | Annotated[list[str], Field(min_length=1)] | Annotated[list[TextInput], Field(min_length=1)]
    model: str | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        out = []
        for item in self.input:
            if isinstance(item, str):
                out.append(item)
            elif item.type == "text" and item.text is not None:
                out.append(item.text)
            else:
                raise OpenAIError(400, f"Input type '{item.type}' is not supported; send text.", param="input",
                                  code="invalid_value")
        return out


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


def _result(m: guard_pb2.Moderation) -> ModerationResult:
    scores: dict[str, float] = {c: 0.0 for c in (*OPENAI_CATEGORIES, *FLOTILLA_CATEGORIES)}
    flags: dict[str, bool] = dict.fromkeys(scores, False)
    for c in m.categories:
        scores[c.category] = round(float(c.score), 6)
        flags[c.category] = bool(c.flagged)
    return ModerationResult(
        flagged=any(flags.values()),
        categories=flags,
        category_scores=scores,
        category_applied_input_types={c: ["text"] for c in scores},
    )


@router.post("/v1/moderations", response_model=ModerationResponse)
async def create_moderation(body: ModerationRequest, request: Request) -> Any:
    texts = body.texts()
    if len(texts) > MAX_INPUTS:
        raise OpenAIError(400, f"At most {MAX_INPUTS} inputs per request.", param="input", code="invalid_value")
    chat = request.app.state.chat
    session = chat.guard.begin(request.state.request_id, getattr(request.state, "api_key", None))
    req = guard_pb2.ModerateRequest(request_id=session.request_id, tenant_id=session.tenant_id, texts=texts)
    if session.policies.input is not None:
        req.policy.CopyFrom(session.policies.input)
    try:
        resp = await chat.guard.stub.Moderate(req, timeout=chat.settings.guard_timeout_s * max(1, len(texts)))
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc, "guard") from None
    return ModerationResponse(
        id=f"modr-{uuid.uuid4().hex}",
        model=body.model or DEFAULT_MODEL,
        results=[_result(m) for m in resp.results],
    )
