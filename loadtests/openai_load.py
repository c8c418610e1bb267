"""One measured OpenAI-API request: streamed (SSE) or not, over a plain ``httpx.Client``.

Every call returns a :class:`Sample` — never raises for HTTP or transport errors — with the client-side
timings that matter for LLM serving:

* **TTFT**: from sending the request to the first event that carries generated text (or, when the model
  stops at once without any text, to the event with the ``finish_reason``);
* **ITL** (inter-token latency): the gaps between consecutive text-carrying events, as the client sees them
  (the gateway's output guard may release a few tokens at once, which shows here as it would to a user);
* **output tokens/s** of the request: ``completion_tokens`` (from ``usage``) over the end-to-end latency.

Nothing here imports Locust; the locustfile turns samples into Locust request events.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


@dataclass
class Sample:
    endpoint: str  # e.g. "chat.stream" (the Locust row name)
    t_start: float  # epoch seconds when the request was sent
    latency_s: float = 0.0  # until the last byte (streams: until [DONE])
    ok: bool = False
    status: int = 0  # HTTP status; 0 when the request never got one
    error: str = ""
    error_code: str = ""
    ttft_s: float | None = None  # streams only
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    items: int = 0  # embeddings: vectors returned
    finish_reason: str = ""
    rag_chunks: int | None = None  # x-flotilla-rag-chunks, when the gateway sent it
    prompt_id: str = ""  # which prompt of the bundled set (data/prompts.jsonl) was sent

    @property
    def t_end(self) -> float:
        return self.t_start + self.latency_s

    @property
    def tokens_per_s(self) -> float | None:
        if not self.ok or self.completion_tokens <= 0 or self.latency_s <= 0:
            return None
        return self.completion_tokens / self.latency_s

    @property
    def route_missing(self) -> bool:
        """A 404 for the URL itself (the gateway does not serve this API). A missing model or object is a 404
        too, but with an error code (``model_not_found``, ``not_found``)."""
        return self.status == 404 and not self.error_code

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["itl_s"] = [round(x, 6) for x in self.itl_s]
        return out


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        err = resp.json().get("error") or {}
        return str(err.get("message") or resp.reason_phrase)[:300], str(err.get("code") or "")
    except (ValueError, AttributeError):
        return resp.text[:300] or resp.reason_phrase, ""


def _rag_chunks(resp: httpx.Response) -> int | None:
    value = resp.headers.get("x-flotilla-rag-chunks")
    return int(value) if value is not None and value.isdigit() else None


def _text_of(event: dict[str, Any]) -> str:
    """Generated text of one stream event: chat ``delta.content`` or completions ``text``."""
    text = ""
    for choice in event.get("choices") or ():
        delta = choice.get("delta")
        text += (delta.get("content") or "") if isinstance(delta, dict) else (choice.get("text") or "")
    return text


def _finish_of(event: dict[str, Any]) -> str:
    for choice in event.get("choices") or ():
        if choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return ""


def stream(client: httpx.Client, path: str, body: dict[str, Any], endpoint: str) -> Sample:
    """POST a ``stream: true`` request with ``stream_options.include_usage`` and time it event by event."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    sample = Sample(endpoint=endpoint, t_start=time.time())
    start = time.perf_counter()
    last: float | None = None
    finished_at: float | None = None  # the first finish_reason: the first token when it was the only one (EOS)
    done = False
    try:
        with client.stream("POST", path, json=body) as resp:
            sample.status = resp.status_code
            sample.rag_chunks = _rag_chunks(resp)
            if resp.status_code >= 400:
                resp.read()
                sample.error, sample.error_code = _error_of(resp)
                return sample
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                event = json.loads(data)
                if "error" in event:  # a failure after the stream had started (e.g. the output guard)
                    err = event["error"] or {}
                    sample.error = f"error event in stream: {err.get('message', '')}"[:300]
                    sample.error_code = str(err.get("code") or "")
                    return sample
                if event.get("usage"):
                    sample.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
                    sample.completion_tokens = int(event["usage"].get("completion_tokens") or 0)
                finish = _finish_of(event)
                if finish and not sample.finish_reason:
                    finished_at = time.perf_counter()
                sample.finish_reason = finish or sample.finish_reason
                if _text_of(event):
                    now = time.perf_counter()
                    if sample.ttft_s is None:
                        sample.ttft_s = now - start
                    elif last is not None:
                        sample.itl_s.append(now - last)
                    last = now
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
        return sample
    finally:
        sample.latency_s = time.perf_counter() - start
    if sample.ttft_s is None and finished_at is not None:  # no text at all: the model stopped at once
        sample.ttft_s = finished_at - start
    if not done:
        sample.error = "stream ended without data: [DONE]"
    elif sample.completion_tokens <= 0:
        sample.error = "stream had no usage (stream_options.include_usage was asked for)"
    else:
        sample.ok = True
    return sample


def request(client: httpx.Client, path: str, body: dict[str, Any], endpoint: str) -> Sample:
    """POST a non-streamed request (chat, completions or embeddings) and read ``usage`` from the answer."""
    sample = Sample(endpoint=endpoint, t_start=time.time())
    start = time.perf_counter()
    try:
        resp = client.post(path, json=body)
    except httpx.HTTPError as exc:
        sample.latency_s = time.perf_counter() - start
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
        return sample
    sample.latency_s = time.perf_counter() - start
    sample.status = resp.status_code
    sample.rag_chunks = _rag_chunks(resp)
    if resp.status_code >= 400:
        sample.error, sample.error_code = _error_of(resp)
        return sample
    try:
        payload = resp.json()
    except ValueError:
        sample.error = "response is not JSON"
        return sample
    usage = payload.get("usage") or {}
    sample.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    sample.completion_tokens = int(usage.get("completion_tokens") or 0)
    sample.items = len(payload.get("data") or payload.get("choices") or ())
    sample.finish_reason = _finish_of(payload)
    if payload.get("object") == "list":  # embeddings: one vector per input
        expected = body["input"] if isinstance(body["input"], list) else [body["input"]]
        sample.ok = sample.items == len(expected) and all(d.get("embedding") for d in payload["data"])
        sample.error = "" if sample.ok else f"expected {len(expected)} embeddings, got {sample.items}"
    elif not payload.get("choices"):
        sample.error = "response has no choices"
    elif sample.completion_tokens <= 0 and sample.finish_reason != "stop":
        sample.error = "response has no usage.completion_tokens"
    else:
        sample.ok = True
    return sample
