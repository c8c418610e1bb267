"""FakeGateway: a small threaded HTTP server speaking the OpenAI API shapes the load tests use, with fixed
timings (token every ``gap_s`` after ``ttft_s``) so the measured numbers can be checked. A fake, for the
unit tests of loadtests/; the real fleet is exercised by tests/e2e/test_loadtest_smoke.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeGateway:
    def __init__(self, *, key: str = "fake-key", tokens: int = 5, ttft_s: float = 0.05, gap_s: float = 0.02,
                 embeddings: bool = True, rag: bool = True, fail_every: int = 0) -> None:
        self.key, self.tokens, self.ttft_s, self.gap_s = key, tokens, ttft_s, gap_s
        self.embeddings, self.rag, self.fail_every = embeddings, rag, fail_every
        self.counts: dict[str, int] = {}
        self.stores: dict[str, dict[str, Any]] = {}
        self.files = 0
        self.seen: list[str] = []  # the prompt text of every chat/completions request
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _count(self, name: str) -> int:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            return self.counts[name]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, code: str | None) -> None:
                self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

            def _authorized(self) -> bool:
                if self.headers.get("authorization") != f"Bearer {fake.key}":
                    self._error(401, "Incorrect API key provided.", "invalid_api_key")
                    return False
                return True

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path == "/v1/models":
                    return self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                if self.path.startswith("/v1/vector_stores") and fake.rag:
                    parts = self.path.split("?")[0].split("/")
                    if len(parts) == 3:  # ["", "v1", "vector_stores"]
                        stores = list(fake.stores.values())
                        return self._json(200, {"object": "list", "data": stores, "has_more": False})
                    store = fake.stores.get(parts[3])
                    if store is None:
                        return self._error(404, "No such vector store", "not_found")
                    store["file_counts"] = {**store["file_counts"], "in_progress": 0,
                                            "completed": store["file_counts"]["total"]}
                    store["status"] = "completed"
                    return self._json(200, store)
                self._error(404, "Unknown request URL. Please check the URL and method.", None)

            def do_POST(self) -> None:
                raw = self._body()
                if not self._authorized():
                    return
                path = self.path
                if path == "/v1/files" and fake.rag:
                    fake.files += 1
                    return self._json(200, {"id": f"file-{fake.files}", "object": "file"})
                if path == "/v1/vector_stores" and fake.rag:
                    body = json.loads(raw)
                    sid = f"vs_{len(fake.stores) + 1}"
                    n = len(body.get("file_ids", []))
                    fake.stores[sid] = {"id": sid, "object": "vector_store", "name": body.get("name"),
                                        "status": "in_progress",
                                        "file_counts": {"in_progress": n, "completed": 0, "failed": 0,
                                                        "cancelled": 0, "total": n}}
                    return self._json(200, fake.stores[sid])
                if path == "/v1/embeddings" and fake.embeddings:
                    body = json.loads(raw)
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(len(texts))]
                    return self._json(200, {"object": "list", "data": data, "model": body["model"],
                                            "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3}})
                if path not in ("/v1/chat/completions", "/v1/completions"):
                    return self._error(404, "Unknown request URL. Please check the URL and method.", None)
                body = json.loads(raw)
                n = fake._count(path)
                fake.seen.append(body["messages"][-1]["content"] if "messages" in body else body.get("prompt", ""))
                if fake.fail_every and n % fake.fail_every == 0:
                    return self._error(503, "The inference service is unavailable; retry shortly.",
                                       "service_unavailable")
                if body.get("model") != "fake-model":
                    return self._error(404, f"The model '{body.get('model')}' does not exist", "model_not_found")
                chat = path == "/v1/chat/completions"
                if "vector_store_ids" in body and not (fake.rag and body["vector_store_ids"][0] in fake.stores):
                    return self._error(404, "No such vector store", "not_found")
                headers = {"x-flotilla-rag-chunks": "2"} if "vector_store_ids" in body else {}
                tokens = min(fake.tokens, int(body.get("max_tokens") or fake.tokens))
                usage = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
                if not body.get("stream"):
                    time.sleep(fake.ttft_s + fake.gap_s * (tokens - 1))
                    choice = ({"index": 0, "message": {"role": "assistant", "content": "x" * tokens},
                               "finish_reason": "length"} if chat else
                              {"index": 0, "text": "x" * tokens, "finish_reason": "length"})
                    return self._json(200, {"object": "chat.completion", "choices": [choice], "usage": usage},
                                      headers)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.close_connection = True

                def send(event: dict[str, Any] | str) -> None:
                    data = event if isinstance(event, str) else json.dumps(event)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()

                if chat:
                    send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                time.sleep(fake.ttft_s)
                for i in range(tokens):
                    if i:
                        time.sleep(fake.gap_s)
                    last = i == tokens - 1
                    choice = ({"index": 0, "delta": {"content": "x"}} if chat else {"index": 0, "text": "x"})
                    choice["finish_reason"] = "length" if last else None
                    send({"choices": [choice]})
                send({"choices": [], "usage": usage})
                send("[DONE]")

        return Handler
