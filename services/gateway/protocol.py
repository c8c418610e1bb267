"""OpenAI protocol types (the subset the gateway serves), after vLLM's ``entrypoints/openai`` models.

Requests reject unknown fields like OpenAI does; fields OpenAI defines that the fleet does not serve
yet are rejected with a clear error naming the parameter instead of being silently ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # C escaping of one string
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Bounds of the gRPC contract (uint32 token counts, int64 seeds): larger values are a 400, not a crash.
MaxTokens = Annotated[int | None, Field(ge=1, le=2**32 - 1)]
Seed = Annotated[int | None, Field(ge=-(2**63), le=2**63 - 1)]


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextContentPart(OpenAIBaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    refusal: str | None = None

    def text(self) -> str:
        if self.content is None:
            if self.tool_calls:  # an assistant turn that called tools: the template sees the calls as JSON
                return json.dumps([{"name": c.function.name, "arguments": c.function.arguments}
                                   for c in self.tool_calls])
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionDefinition(OpenAIBaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(OpenAIBaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(OpenAIBaseModel):
    name: str


class NamedToolChoice(OpenAIBaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(OpenAIBaseModel):
    name: Annotated[str, Field(max_length=64)] = "response"
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class ResponseFormat(OpenAIBaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and (self.json_schema is None or self.json_schema.schema_ is None):
            raise ValueError("response_format.json_schema.schema is required when type is 'json_schema'")
        return self


class StreamOptions(OpenAIBaseModel):
    include_usage: bool | None = False
    include_obfuscation: bool | None = None


# Parameters OpenAI defines that the fleet does not serve: accepted only at their "off" value.
_NOT_YET = ("functions", "function_call", "audio", "modalities", "prediction", "web_search_options")


def _stop_list(v: str | list[str] | None) -> list[str] | None:
    """OpenAI accepts one stop string or a list; downstream always sees a list."""
    if v is None:
        return None
    return [v] if isinstance(v, str) else v


StopParam = Annotated[str | Annotated[list[str], Field(max_length=4)] | None, AfterValidator(_stop_list)]


class ChatCompletionRequest(OpenAIBaseModel):
    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    n: Annotated[int | None, Field(ge=1, le=128)] = 1
    max_tokens: MaxTokens = None
    max_completion_tokens: MaxTokens = None
    stop: StopParam = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: Seed = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int | None, Field(ge=0, le=20)] = None
    response_format: ResponseFormat | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    # OpenAI parameters not served (see _NOT_YET).
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    # Flotilla extension (send with the SDK's ``extra_body``): retrieve context from these vector stores.
    vector_store_ids: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError(
                "stream_options: The 'stream_options' parameter is only allowed when 'stream' is enabled."
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs: 'logprobs' must be set to true when 'top_logprobs' is used.")
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise ValueError("tool_choice: 'tool_choice' is only allowed when 'tools' are specified.")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tools:
            if self.tool_choice.function.name not in {t.function.name for t in self.tools}:
                raise ValueError(f"tool_choice: no function named '{self.tool_choice.function.name}' in 'tools'.")
        return self

    def unsupported_param(self) -> str | None:
        """The first OpenAI parameter set that the fleet does not serve yet."""
        for name in _NOT_YET:
            value = getattr(self, name)
            if value not in (None, False, [], {}):
                return name
        return None

    @property
    def effective_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: None = None


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class ChatCompletionChoice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


def _now() -> int:
    return int(time.time())


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class SearchResult(BaseModel):
    """Flotilla extension: a retrieved chunk given to the model as context, source ``[index]``."""

    index: int
    file_id: str
    filename: str
    vector_store_id: str
    chunk_index: int
    start_char: int  # the chunk's span in the file's extracted text
    end_char: int
    text: str
    score: float


class Citation(SearchResult):
    """Flotilla extension: a chunk the answer of choice ``choice_index`` cites, at ``positions`` (character
    indices in its content), found by ``cited_by``: the model's own ``[n]`` marker, or the gateway's attribution
    of an answer sentence to the chunk that supports it (``support``: the share of the sentence it covers)."""

    choice_index: int = 0
    cited_by: Literal["model", "attribution"]
    positions: list[int]
    support: float | None = None


def _is_none(value: Any) -> bool:
    return value is None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None
    # With vector_store_ids: the chunks given as context, and those the answer cites.
    search_results: list[SearchResult] | None = Field(default=None, exclude_if=_is_none)
    citations: list[Citation] | None = Field(default=None, exclude_if=_is_none)


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatCompletionChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    system_fingerprint: str | None = None
    usage: UsageInfo | None = None
    search_results: list[SearchResult] | None = Field(default=None, exclude_if=_is_none)  # on the first chunk
    citations: list[Citation] | None = Field(default=None, exclude_if=_is_none)  # with a choice's finish_reason


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


# -- /v1/completions -------------------------------------------------------------------------------------


class CompletionRequest(OpenAIBaseModel):
    model: str
    prompt: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    max_tokens: MaxTokens = 16  # OpenAI's default for completions
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    n: Annotated[int | None, Field(ge=1, le=128)] = 1
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: Annotated[int | None, Field(ge=0, le=5)] = None
    echo: bool | None = False
    suffix: str | None = None
    stop: StopParam = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    seed: Seed = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    user: str | None = None
    best_of: Annotated[int | None, Field(ge=1)] = None

    @model_validator(mode="after")
    def _check(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt: 'prompt' must not be an empty list.")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: The 'stream_options' parameter is only allowed when 'stream' is enabled.")
        return self


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


def cmpl_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=cmpl_id)
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None


_TEXT_MARKER = "FLOTILLA_TEXT_MARKER_7f3a9c"


class TextEvents:
    """SSE events of one stream whose chunks differ only in one text field — the hot path of streaming, one
    content delta per token. The chunk of each choice is serialised by pydantic once, with a marker where the
    text goes; every event is then the two halves around the JSON-escaped text: the same JSON, without building
    and validating three models per token."""

    def __init__(self, build: Callable[[int, str], BaseModel], exclude: set[str] | None = None) -> None:
        self._build = build  # (choice index, text) -> the chunk
        self._exclude = exclude
        self._halves: dict[int, tuple[str, str]] = {}

    def event(self, index: int, text: str) -> str:
        halves = self._halves.get(index)
        if halves is None:
            body = self._build(index, _TEXT_MARKER).model_dump_json(exclude=self._exclude)
            before, marker, after = body.partition(_TEXT_MARKER)
            if not marker or _TEXT_MARKER in after:
                raise ValueError("the chunk must carry the text exactly once")
            halves = self._halves[index] = (f"data: {before}", f"{after}\n\n")
        return halves[0] + encode_basestring(text)[1:-1] + halves[1]
