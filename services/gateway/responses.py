"""``POST /v1/responses``: a subset of OpenAI's Responses API over the chat pipeline.

Served: ``input`` (a string or a list of messages), ``instructions``, ``max_output_tokens``, ``temperature``,
``top_p``, ``stream`` (OpenAI's event types), ``tools=[{"type": "file_search", "vector_store_ids": [...]}]``
with ``max_num_results``, ``filters`` and ``ranking_options``, ``include=["file_search_call.results"]``,
``tool_choice`` ``auto``/``required``/``none``. With file_search the output starts with a
``file_search_call`` item, and the answer's citations (the ``[n]`` source markers the model writes, else the
gateway's attribution of its sentences to the chunks that support them: services/gateway/citations.py)
become ``file_citation`` annotations. Responses are not stored (``store`` is false;
``previous_response_id`` is refused).

Generation reuses :class:`ChatPipeline`: guard input scan, retrieval with the guard's scan of retrieved
chunks, context insertion, inference, guard output scan (streamed hold-back included).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from flotilla.v1 import rag_pb2
from services.gateway import rag_api, tracing
from services.gateway.chat import ChatPipeline, Prepared
from services.gateway.citations import Cite, Marker, MarkerStream, strip_markers
from services.gateway.errors import OpenAIError
from services.gateway.protocol import ChatCompletionRequest, ChatMessage, MaxTokens, OpenAIBaseModel, StreamOptions

router = APIRouter()
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
INCLUDABLE = {"file_search_call.results"}


class RankingOptions(OpenAIBaseModel):
    ranker: str | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class FileSearchTool(OpenAIBaseModel):
    type: Literal["file_search"]
    vector_store_ids: Annotated[list[str], Field(min_length=1, max_length=2)]
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None


class TextFormat(OpenAIBaseModel):
    type: Literal["text"]


class TextConfig(OpenAIBaseModel):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(OpenAIBaseModel):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: MaxTokens = None  # the same bounds as chat's max_tokens, which it becomes
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    stream: bool | None = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    include: list[str] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    text: TextConfig | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    stream_options: dict[str, Any] | None = None


def _bad(message: str, param: str, code: str = "invalid_value") -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad("Message content is a string or a list of text parts.", where)
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise _bad(f"Content parts of type '{kind}' are not supported; send 'input_text'.", f"{where}[{i}]")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def chat_messages(body: ResponsesRequest) -> list[ChatMessage]:
    messages = [ChatMessage(role="system", content=body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        return [*messages, ChatMessage(role="user", content=body.input)]
    for i, item in enumerate(body.input):
        kind = item.get("type", "message")
        if kind == "file_search_call":  # a previous turn's search, sent back with its output: nothing to replay
            continue
        role = item.get("role")
        if kind != "message" or role not in ("user", "system", "developer", "assistant"):
            raise _bad(f"Input items of type '{kind}' are not supported; send messages with a role of user, "
                       "system, developer or assistant.", f"input[{i}]")
        messages.append(ChatMessage(role=role, content=_text_of(item.get("content"), f"input[{i}].content")))
    if not any(m.role == "user" for m in messages):
        raise _bad("'input' needs at least one user message.", "input")
    return messages


def file_search_tool(body: ResponsesRequest) -> FileSearchTool | None:
    found: FileSearchTool | None = None
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") != "file_search":
            raise _bad(f"Tools of type '{tool.get('type')}' are not supported by this deployment; "
                       "only 'file_search' is.", f"tools[{i}].type", "unsupported_parameter")
        if found is not None:
            raise _bad("At most one file_search tool is allowed.", f"tools[{i}]")
        try:
            found = FileSearchTool.model_validate(tool)
        except ValueError as exc:
            raise _bad(f"Invalid file_search tool: {exc}".splitlines()[0], f"tools[{i}]") from None
    return found


def check(body: ResponsesRequest) -> None:
    if body.previous_response_id:
        raise _bad("Responses are not stored by this deployment, so 'previous_response_id' cannot be used; "
                   "send the conversation in 'input'.", "previous_response_id", "unsupported_parameter")
    for name in body.include or []:
        if name not in INCLUDABLE:
            raise _bad(f"'{name}' cannot be included by this deployment; supported: {sorted(INCLUDABLE)}.",
                       "include", "unsupported_parameter")
    if body.reasoning and body.reasoning.get("effort"):
        raise _bad("'reasoning' is not supported by this model.", "reasoning", "unsupported_parameter")
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") != "file_search":
        raise _bad("tool_choice may only name the 'file_search' tool.", "tool_choice", "unsupported_parameter")


def _rid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


class Turn:
    """One response being built: its ids, the retrieval it did, and the pieces of the final object."""

    def __init__(self, body: ResponsesRequest, tool: FileSearchTool | None, searched: bool, query: str) -> None:
        self.body = body
        self.tool = tool
        self.searched = searched
        self.query = query
        self.id = _rid("resp")
        self.msg_id = _rid("msg")
        self.fs_id = _rid("fs")
        self.created_at = int(time.time())
        self.chunks: list[rag_pb2.Chunk] = []
        self.usage = {"input_tokens": 0, "output_tokens": 0}

    def search_item(self, status: str = "completed") -> dict[str, Any]:
        results = None
        if status == "completed" and "file_search_call.results" in (self.body.include or []):
            results = [
                {"file_id": c.file_id, "filename": c.source, "score": round(float(c.score), 6), "text": c.text,
                 "attributes": rag_api.loads(c.attributes_json)}
                for c in self.chunks
            ]
        return {"id": self.fs_id, "type": "file_search_call", "status": status, "queries": [self.query],
                "results": results}

    def annotation(self, passage: int, index: int) -> dict[str, Any]:
        c = self.chunks[passage - 1]
        return {"type": "file_citation", "index": index, "file_id": c.file_id, "filename": c.source}

    def annotations(self, cites: list[Cite]) -> list[dict[str, Any]]:
        """One ``file_citation`` per cited file and place (two chunks of one file cited at one place: one)."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for c in cites:
            a = self.annotation(c.passage, c.index)
            if (a["file_id"], c.index) not in seen:
                seen.add((a["file_id"], c.index))
                out.append(a)
        return out

    def message_item(self, text: str, annotations: list[dict[str, Any]], status: str) -> dict[str, Any]:
        return {"id": self.msg_id, "type": "message", "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]}

    def response(self, status: str, output: list[dict[str, Any]], incomplete: str | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        b = self.body
        tools = [self.tool.model_dump(exclude_none=True)] if self.tool else []
        usage = None
        if status != "in_progress":
            usage = {"input_tokens": self.usage["input_tokens"], "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens": self.usage["output_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
                     "total_tokens": self.usage["input_tokens"] + self.usage["output_tokens"]}
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": b.instructions, "max_output_tokens": b.max_output_tokens, "model": b.model,
            "output": output, "parallel_tool_calls": True if b.parallel_tool_calls is None else b.parallel_tool_calls,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": False,
            "temperature": 1.0 if b.temperature is None else b.temperature,
            "text": {"format": {"type": "text"}}, "tool_choice": b.tool_choice or "auto", "tools": tools,
            "top_p": 1.0 if b.top_p is None else b.top_p, "truncation": b.truncation or "disabled",
            "usage": usage, "user": b.user, "metadata": b.metadata or {},
        }


def _incomplete_reason(finish: str | None) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish or "")


@router.post("/v1/responses")
async def create_response(body: ResponsesRequest, request: Request):
    from services.gateway.access import Accounting, estimate_prompt_tokens
    from services.gateway.app import _accounted_call, _max_new, _response_headers, accounted  # no import cycle

    access = request.app.state.access
    chat: ChatPipeline = request.app.state.chat
    key = access.authenticate(request)
    access.check_model(key, body.model)
    check(body)
    messages = chat_messages(body)
    tool = file_search_tool(body)
    searched = tool is not None and body.tool_choice != "none"
    query = next((m.text() for m in reversed(messages) if m.role == "user"), "")
    turn = Turn(body, tool, searched, query)
    chat_req = ChatCompletionRequest(
        model=body.model, messages=messages, max_tokens=body.max_output_tokens, temperature=body.temperature,
        top_p=body.top_p, user=body.user, stream=bool(body.stream),
        stream_options=StreamOptions(include_usage=True) if body.stream else None,
    )
    retrieval = None
    if searched and tool is not None:
        ranking = tool.ranking_options or RankingOptions()
        retrieval = rag_pb2.RetrieveRequest(
            vector_store_ids=tool.vector_store_ids, k=tool.max_num_results or rag_api.settings().responses_max_results,
            score_threshold=ranking.score_threshold or 0.0,
            filters_json=json.dumps(tool.filters) if tool.filters else "", check_stores=True,
        )
    acct = request.state.acct = Accounting(key, "responses", body.model, request.state.request_id, id=turn.id)
    tracing.chat_request(acct, chat_req)
    prompt = estimate_prompt_tokens([m.text() for m in messages])
    await access.admit(acct, prompt + _max_new(chat, body.model, body.max_output_tokens, prompt))

    async def run() -> Response:
        prepared = await chat.prepare(chat_req, acct.request_id, key.tenant_id, acct.id, retrieval=retrieval,
                                      principal=key)
        turn.chunks = list(prepared.chunks)
        acct.guard = prepared.guard
        if body.stream:
            events = await chat.open_stream(chat_req, prepared, acct)
            attribute = lambda text: chat.cite(prepared, text, clean=True)  # noqa: E731 (the answer has no markers)
            return StreamingResponse(accounted(access, acct, _stream(turn, events, attribute)),
                                     media_type="text/event-stream",
                                     headers={**SSE_HEADERS, **_response_headers(acct, prepared.headers)})
        result = await _complete(chat, chat_req, prepared, turn, acct)
        return JSONResponse(result, headers=_response_headers(acct, prepared.headers))

    return await _accounted_call(access, acct, run)


async def _complete(
    chat: ChatPipeline, chat_req: ChatCompletionRequest, prepared: Prepared, turn: Turn, acct: Any = None
) -> dict:
    result = await chat.complete(chat_req, prepared, acct)
    choice = result.choices[0]
    turn.usage = {"input_tokens": result.usage.prompt_tokens, "output_tokens": result.usage.completion_tokens}
    text, _ = strip_markers(choice.message.content or "", len(turn.chunks))
    annotations = turn.annotations(chat.cite(prepared, choice.message.content or "", clean=True))
    incomplete = _incomplete_reason(choice.finish_reason)
    status = "incomplete" if incomplete else "completed"
    output = [turn.search_item()] if turn.searched else []
    output.append(turn.message_item(text, annotations, status))
    return turn.response(status, output, incomplete)


async def _stream(
    turn: Turn, chat_events: AsyncIterator[str], attribute: Callable[[str], list[Cite]] = lambda text: [],
) -> AsyncIterator[str]:
    """Chat-completion SSE from the pipeline → Responses events (``event: <type>`` + ``data: {...}``); the
    model's markers become annotations as they complete, else ``attribute`` cites the whole answer at the end."""
    seq = 0

    def event(kind: str, **fields: Any) -> str:
        nonlocal seq
        payload = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    output: list[dict[str, Any]] = []
    yield event("response.created", response=turn.response("in_progress", []))
    yield event("response.in_progress", response=turn.response("in_progress", []))
    if turn.searched:
        ids = {"output_index": 0, "item_id": turn.fs_id}
        yield event("response.output_item.added", output_index=0, item=turn.search_item("in_progress"))
        yield event("response.file_search_call.in_progress", **ids)
        yield event("response.file_search_call.searching", **ids)
        yield event("response.file_search_call.completed", **ids)
        output.append(turn.search_item())
        yield event("response.output_item.done", output_index=0, item=output[0])
    index = len(output)
    ids = {"item_id": turn.msg_id, "output_index": index, "content_index": 0}
    yield event("response.output_item.added", output_index=index, item=turn.message_item("", [], "in_progress") |
                {"content": []})
    yield event("response.content_part.added", item_id=turn.msg_id, output_index=index, content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    markers = MarkerStream(len(turn.chunks))
    text: list[str] = []
    annotations: list[dict[str, Any]] = []
    finish: str | None = None
    error: dict[str, Any] | None = None

    def emit(clean: str, found: list[Marker]) -> list[str]:
        out = []
        if clean:
            text.append(clean)
            out.append(event("response.output_text.delta", **ids, delta=clean, logprobs=[]))
        for a in turn.annotations([Cite(p, m.index, "model") for m in found for p in m.passages]):
            annotations.append(a)
            out.append(event("response.output_text.annotation.added", **ids, annotation_index=len(annotations) - 1,
                             annotation=a))
        return out

    try:
        async for raw in chat_events:
            data = raw.removeprefix("data: ").strip()
            if not data or data == "[DONE]":
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                if finish != "content_filter":  # a blocked answer already ends as incomplete
                    error = chunk["error"]
                continue
            if chunk.get("usage"):
                turn.usage = {"input_tokens": chunk["usage"]["prompt_tokens"],
                              "output_tokens": chunk["usage"]["completion_tokens"]}
            for choice in chunk.get("choices", []):
                delta = (choice.get("delta") or {}).get("content") or ""
                for e in emit(*markers.feed(delta)):
                    yield e
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        for e in emit(*markers.feed("", final=True)):
            yield e
    finally:
        await chat_events.aclose()  # type: ignore[attr-defined]
    full = "".join(text)
    if error is not None:
        yield event("error", code=error.get("code"), message=error.get("message", ""), param=error.get("param"))
        yield event("response.failed", response=turn.response("failed", output, error={
            "code": error.get("code") or "server_error", "message": error.get("message", "")}))
        return
    if not annotations:
        for a in turn.annotations(attribute(full)):
            annotations.append(a)
            yield event("response.output_text.annotation.added", **ids, annotation_index=len(annotations) - 1,
                        annotation=a)
    incomplete = _incomplete_reason(finish)
    status = "incomplete" if incomplete else "completed"
    yield event("response.output_text.done", **ids, text=full, logprobs=[])
    yield event("response.content_part.done", item_id=turn.msg_id, output_index=index, content_index=0,
                part={"type": "output_text", "text": full, "annotations": annotations, "logprobs": []})
    item = turn.message_item(full, annotations, status)
    output.append(item)
    yield event("response.output_item.done", output_index=index, item=item)
    yield event(f"response.{status}", response=turn.response(status, output, incomplete))
