"""Locust profiles for an OpenAI-compatible gateway (Flotilla's, or any other).

User classes (pick with ``locust -f loadtests/locustfile.py CLASS …`` or ``make loadtest PROFILE=CLASS``):

=====================  =====================================================================================
``StreamingChatUser``  ``/v1/chat/completions`` with ``stream: true`` — TTFT, ITL and tokens/s per request
``ChatUser``           ``/v1/chat/completions`` without streaming — latency and tokens/s
``CompletionsUser``    ``/v1/completions`` streamed — TTFT, ITL and tokens/s
``EmbeddingsUser``     ``/v1/embeddings`` with batches of texts (``--embedding-batch``)
``RagChatUser``        streamed chat over a vector store (``vector_store_ids``) built from ``data/docs/``
``MixedUser``          all of the above in one user, weighted 6 : 2 : 1 : 1 : 1 (the default profile)
=====================  =====================================================================================

Every request fires a Locust request event (``POST``, named after the endpoint: ``chat.stream``, ``chat``,
``completions.stream``, ``embeddings``, ``rag.stream``) with the end-to-end latency and, as response length,
the completion tokens. Successful streams also fire ``TTFT`` (ms to the first text) and ``ITL`` (ms between
text events, one event per gap); every successful generation fires ``TOK/S`` — whose "response time" column
holds that request's **output tokens per second**, not milliseconds. So they show as rows in Locust's UI, CSV
and HTML report. Each request is also recorded in full (``--samples-file``; workers ship theirs to the master)
for the summary, plots and SLO gates of ``loadtests/report.py``.

Host and key come from Locust's options or the environment: ``--host`` / ``LOCUST_HOST`` (the gateway's
root, e.g. ``http://127.0.0.1:8000``; a trailing ``/v1`` is accepted), ``--api-key`` / ``FLOTILLA_API_KEY``
(else ``OPENAI_API_KEY``). A route the gateway does not serve (404 without an error code) is skipped with a
warning and a ``skip`` record instead of counting as failures.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent.event
import gevent.lock
import httpx
from locust import User, events, task
from locust.exception import RescheduleTaskImmediately, StopUser
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the `loadtests` package, in any cwd

from loadtests import prompts
from loadtests.openai_load import Sample, request, stream

log = logging.getLogger("flotilla.loadtest")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

STORE_NAME = "flotilla-loadtest"
STORE_READY_TIMEOUT_S = 180.0
REPORT_KEY = "flotilla_samples"


class LoadTestError(Exception):
    """What Locust shows (and groups by) in its failures table."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser  # is_secret / include_in_web_ui exist on Locust's parser only, not on argument groups
    group.add_argument("--api-key", env_var="FLOTILLA_API_KEY", default="", is_secret=True,
                       help="Bearer key for the gateway (else $OPENAI_API_KEY)")
    group.add_argument("--model", env_var="FLOTILLA_LOADTEST_MODEL", default="",
                       help="model to load (default: the first one /v1/models lists)")
    group.add_argument("--max-tokens", type=int, env_var="FLOTILLA_LOADTEST_MAX_TOKENS", default=0,
                       help="cap every prompt's max_tokens (0: the prompt set's own, 32–160)")
    group.add_argument("--prompt-kinds", env_var="FLOTILLA_LOADTEST_PROMPT_KINDS", default="short,medium,long",
                       help="which prompts of the bundled set to draw from")
    group.add_argument("--think-time", env_var="FLOTILLA_LOADTEST_THINK_TIME", default="0",
                       help="seconds a user waits between requests: N or MIN-MAX (0: closed loop)")
    group.add_argument("--cacheable-prompts", action="store_true", env_var="FLOTILLA_LOADTEST_CACHEABLE_PROMPTS",
                       help="send the bundled prompts verbatim (default: a unique tag first, so that the prefix "
                       "cache cannot turn 50 repeated prompts into cache hits)")
    group.add_argument("--embedding-model", env_var="FLOTILLA_LOADTEST_EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
    group.add_argument("--embedding-batch", type=int, env_var="FLOTILLA_LOADTEST_EMBEDDING_BATCH", default=8)
    group.add_argument("--vector-store-id", env_var="FLOTILLA_LOADTEST_VECTOR_STORE_ID", default="",
                       help="RAG: an existing vector store (default: find or build 'flotilla-loadtest')")
    group.add_argument("--request-timeout", type=float, env_var="FLOTILLA_LOADTEST_REQUEST_TIMEOUT", default=300.0)
    group.add_argument("--samples-file", env_var="FLOTILLA_LOADTEST_SAMPLES", default="", include_in_web_ui=False,
                       help="master/standalone: write every request as a JSON line here")


# -- samples: recorded here (standalone), or shipped from workers to the master ------------------------


class Recorder:
    """Standalone or master: writes records to the samples file (or drops them without one). Worker: buffers
    them until the next report to the master (every 3 s, and a final one on quit)."""

    def __init__(self) -> None:
        self.buffer: list[dict[str, Any]] = []
        self.file: Any = None
        self.shipping = False

    def open(self, path: str) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w")  # closed on the quit event

    def add(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
        elif self.shipping:
            self.buffer.append(record)

    def drain(self) -> list[dict[str, Any]]:
        out, self.buffer = self.buffer, []
        return out

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


recorder = Recorder()


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    _env["environment"] = environment
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def ship(client_id: str, data: dict[str, Any]) -> None:
            data[REPORT_KEY] = recorder.drain()

        recorder.shipping = True
        environment.events.report_to_master.add_listener(ship)
        runner.register_message(DRAIN, _worker_drain)
        return
    recorder.open(environment.parsed_options.samples_file if environment.parsed_options else "")
    if isinstance(runner, MasterRunner):

        def receive(client_id: str, data: dict[str, Any]) -> None:
            for record in data.get(REPORT_KEY, ()):
                recorder.add({**record, "worker": client_id})

        def drained(environment: Any, msg: Any, **_: Any) -> None:
            receive(msg.node_id, msg.data or {})
            _pending_workers.discard(msg.node_id)

        environment.events.worker_report.add_listener(receive)
        runner.register_message(DRAINED, drained)


# -- the end of a distributed run --------------------------------------------------------------------------
#
# A headless Locust master quits the moment the run time is up: it tells its workers to quit and exits half a
# second later, so whatever the workers' users still had in flight — with LLM requests, often most of the
# requests of the last minute — never reaches it, and --stop-timeout does not help. So the master first asks
# every worker to drain: its users start no new request, finish the one they are in (up to --stop-timeout),
# and the worker sends every remaining record in a final message; the master waits for all of them.

DRAIN, DRAINED = "flotilla_drain", "flotilla_drained"
_draining = gevent.event.Event()
_inflight = [0]
_pending_workers: set[str] = set()


def _worker_drain(environment: Any, msg: Any, **_: Any) -> None:
    _draining.set()

    def finish() -> None:
        deadline = time.monotonic() + (environment.stop_timeout or 0) + 5
        while _inflight[0] and time.monotonic() < deadline:
            gevent.sleep(0.2)
        environment.runner.send_message(DRAINED, {REPORT_KEY: recorder.drain()})

    gevent.spawn(finish)


def _master_drain(environment: Any) -> None:
    runner = environment.runner
    _pending_workers.update(c.id for c in runner.clients.all)
    for worker in list(_pending_workers):
        runner.send_message(DRAIN, None, worker)
    deadline = time.monotonic() + (environment.stop_timeout or 0) + 15
    while _pending_workers and time.monotonic() < deadline:
        gevent.sleep(0.2)
    if _pending_workers:
        log.warning("%d worker(s) did not drain in time; their last requests are missing", len(_pending_workers))


_env: dict[str, Any] = {}


@events.test_stopping.add_listener
def _on_stopping(environment: Any, **_: Any) -> None:
    """The end of the load window (the run time is up): the report's throughput counts tokens up to here, not
    the tail of in-flight requests finishing afterwards."""
    if not isinstance(environment.runner, WorkerRunner):
        recorder.add({"kind": "stop", "t": time.time()})
    if isinstance(environment.runner, MasterRunner):
        _master_drain(environment)


@events.quit.add_listener
def _on_quit(**_: Any) -> None:  # after the workers' final reports, before Locust closes its CSV files
    recorder.close()
    environment = _env.get("environment")
    if environment is not None and not isinstance(environment.runner, WorkerRunner):
        write_final_csv(environment)


def write_final_csv(environment: Any) -> None:
    """Rewrite ``<prefix>_stats.csv`` and ``_failures.csv`` from the final stats. Locust refreshes them once a
    second while running and not at exit, so without this they miss the last second of requests (and, in
    distributed mode, the workers' final reports)."""
    import csv

    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with open(f"{prefix}_stats.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(writer.requests_csv_columns)
        writer._requests_data_rows(out)
    with open(f"{prefix}_failures.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(writer.failures_columns)
        writer._failures_data_rows(out)


def fire(environment: Any, sample: Sample) -> None:
    """Locust request events for one sample, and the sample's record."""
    ev = environment.events.request
    exc = None if sample.ok else LoadTestError(f"HTTP {sample.status}: {sample.error}" if sample.status
                                               else sample.error)
    method = "GET" if sample.endpoint == "models" else "POST"
    ev.fire(request_type=method, name=sample.endpoint, response_time=sample.latency_s * 1000,
            response_length=sample.completion_tokens or sample.items, exception=exc, context={})
    if sample.ok:
        if sample.ttft_s is not None:
            ev.fire(request_type="TTFT", name=sample.endpoint, response_time=sample.ttft_s * 1000,
                    response_length=0, exception=None, context={})
        for gap in sample.itl_s:
            ev.fire(request_type="ITL", name=sample.endpoint, response_time=gap * 1000, response_length=0,
                    exception=None, context={})
        if sample.tokens_per_s is not None:
            ev.fire(request_type="TOK/S", name=sample.endpoint, response_time=sample.tokens_per_s,
                    response_length=sample.completion_tokens, exception=None, context={})
    recorder.add({"kind": "request", **sample.to_json()})


# -- per-process shared state: the model, skipped routes, the RAG vector store ---------------------------

_lock = gevent.lock.Semaphore()
_store_lock = gevent.lock.Semaphore()  # held while the store is built (may take _lock inside, never the reverse)
_model: dict[str, str] = {}
_skipped: dict[str, str] = {}
_store: dict[str, str] = {}


def _skip(environment: Any, capability: str, reason: str) -> None:
    with _lock:
        if capability in _skipped:
            return
        _skipped[capability] = reason
    log.warning("skipping %s: %s", capability, reason)
    recorder.add({"kind": "skip", "endpoint": capability, "reason": reason, "t_start": time.time()})


def _parse_think(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    low = float(lo or 0)
    return low, float(hi) if hi else low


def one_request(method: Any) -> Any:
    """A user action: none starts once the worker drains; the ones in flight are counted until they end."""

    @functools.wraps(method)
    def wrapper(self: Any) -> None:
        if _draining.is_set():
            raise StopUser()
        _inflight[0] += 1
        try:
            method(self)
        finally:
            _inflight[0] -= 1

    return wrapper


class FlotillaUser(User):
    """Base of the profiles: one keep-alive ``httpx.Client`` per user, measuring helpers for each API."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.opts = opts
        self.rng = random.Random()
        self.kinds = tuple(k.strip() for k in (opts.prompt_kinds if opts else "short,medium,long").split(",")
                           if k.strip())
        self.think = _parse_think(opts.think_time if opts else "0")
        self.backoff = False
        self.http: httpx.Client | None = None
        self.model = ""

    def wait_time(self) -> float:
        pause = self.rng.uniform(*self.think)
        if self.backoff:  # the last request never got an answer: don't spin on a dead gateway
            self.backoff = False
            return max(pause, 1.0)
        return pause

    def on_start(self) -> None:
        if not self.host:
            raise StopUser("no host: pass --host (or LOCUST_HOST), e.g. http://127.0.0.1:8000")
        root = self.host.rstrip("/").removesuffix("/v1")
        key = (self.opts.api_key if self.opts else "") or os.environ.get("OPENAI_API_KEY", "")
        timeout = self.opts.request_timeout if self.opts else 300.0
        self.http = httpx.Client(
            base_url=root, headers={"authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )
        self.model = self._resolve_model()

    def on_stop(self) -> None:
        if self.http is not None:
            self.http.close()

    def _resolve_model(self) -> str:
        if self.opts and self.opts.model:
            return self.opts.model
        with _lock:
            if "id" not in _model:
                start = time.perf_counter()
                try:
                    resp = self.http.get("/v1/models")  # type: ignore[union-attr]
                    resp.raise_for_status()
                    _model["id"] = resp.json()["data"][0]["id"]
                except (httpx.HTTPError, LookupError, ValueError) as exc:
                    took = time.perf_counter() - start
                    fire(self.environment, Sample(endpoint="models", t_start=time.time() - took, latency_s=took,
                                                  error=f"cannot list models: {exc}"[:300]))
                    self.backoff = True
                    return ""
            return _model["id"]

    def _record(self, sample: Sample, prompt_id: str = "") -> Sample:
        sample.prompt_id = prompt_id
        fire(self.environment, sample)
        self.backoff = sample.status == 0
        return sample

    def _missing(self, capability: str, sample: Sample | None = None) -> bool:
        if sample is not None and sample.route_missing:
            _skip(self.environment, capability,
                  f"the gateway answered 404 for its route ({sample.error or 'Not Found'}); not deployed here")
        return capability in _skipped

    def _leave(self, capability: str) -> None:
        """Leave a capability the gateway lacks: a dedicated user stops, a mixed one picks another task."""
        if self.tasks and len(self.tasks) > 1:
            raise RescheduleTaskImmediately()
        raise StopUser()

    def _unique(self, text: str) -> str:
        """Real prompts are rarely repeats; ours are 50. A ticket number at the start keeps vLLM's prefix cache
        from serving repeats (only the chat template's own prefix stays shared, as in real traffic). A bracketed
        hex tag looked like a prompt-injection marker to the guard's classifier on a few prompts; this plain
        form was never flagged (200 draws over the whole set through /v1/moderations)."""
        if self.opts and self.opts.cacheable_prompts:
            return text
        return f"Ticket {self.rng.randrange(10**7):07d}: {text}"

    def _chat_body(self, text: str, max_tokens: int) -> dict[str, Any]:
        return {"model": self.model, "messages": [{"role": "user", "content": self._unique(text)}],
                "max_tokens": max_tokens}

    def _prompt(self) -> prompts.Prompt:
        return prompts.pick(self.rng, self.kinds)

    # -- one request of each kind ------------------------------------------------------------------------

    @one_request
    def chat_stream(self) -> None:
        p = self._prompt()
        self._record(stream(self.http, "/v1/chat/completions",  # type: ignore[arg-type]
                            self._chat_body(p.text, p.capped(self.opts.max_tokens)), "chat.stream"), p.id)

    @one_request
    def chat(self) -> None:
        p = self._prompt()
        self._record(request(self.http, "/v1/chat/completions",  # type: ignore[arg-type]
                             self._chat_body(p.text, p.capped(self.opts.max_tokens)), "chat"), p.id)

    @one_request
    def completions_stream(self) -> None:
        if self._missing("completions.stream"):
            self._leave("completions.stream")
        p = self._prompt()
        # a completion prompt to continue, as legacy-API clients send (a bare question often gets an instant EOS)
        body = {"model": self.model, "prompt": self._unique(f"Question: {p.text}\nAnswer:"),
                "max_tokens": p.capped(self.opts.max_tokens)}
        sample = stream(self.http, "/v1/completions", body, "completions.stream")  # type: ignore[arg-type]
        if self._missing("completions.stream", sample):
            self._leave("completions.stream")
        self._record(sample, p.id)

    @one_request
    def embeddings(self) -> None:
        if self._missing("embeddings"):
            self._leave("embeddings")
        texts = prompts.embedding_batch(self.rng, self.opts.embedding_batch)
        body = {"model": self.opts.embedding_model, "input": texts}
        sample = request(self.http, "/v1/embeddings", body, "embeddings")  # type: ignore[arg-type]
        if self._missing("embeddings", sample):
            self._leave("embeddings")
        self._record(sample)

    @one_request
    def rag_stream(self) -> None:
        if self._missing("rag.stream"):
            self._leave("rag.stream")
        store = self._vector_store()
        if not store:
            self._leave("rag.stream")
        n = self.rng.randrange(len(prompts.rag_questions()))
        body = self._chat_body(prompts.rag_questions()[n], self.opts.max_tokens or 96)
        body["vector_store_ids"] = [store]
        sample = stream(self.http, "/v1/chat/completions", body, "rag.stream")  # type: ignore[arg-type]
        if sample.ok and not sample.rag_chunks:
            sample.ok, sample.error = False, "no x-flotilla-rag-chunks: nothing was retrieved"
        self._record(sample, f"rag-{n:02d}")

    # -- RAG: one vector store per process, found or built once ------------------------------------------

    def _vector_store(self) -> str:
        with _store_lock:
            if "id" in _store or "error" in _store:
                return _store.get("id", "")
            if self.opts.vector_store_id:
                _store["id"] = self.opts.vector_store_id
                return _store["id"]
            start = time.perf_counter()
            try:
                _store["id"] = self._find_or_build_store()
            except (httpx.HTTPError, LookupError, ValueError, TimeoutError) as exc:
                _store["error"] = str(exc)
                # a failed request like any other: Locust's failures table, and the error rate of the SLO gates
                fire(self.environment, Sample(endpoint="rag.setup", t_start=time.time() - (time.perf_counter() - start),
                                              latency_s=time.perf_counter() - start,
                                              error=f"vector store setup failed: {exc}"[:300]))
            except _RouteMissing as exc:
                _store["error"] = str(exc)
                _skip(self.environment, "rag.stream", str(exc))
            return _store.get("id", "")

    def _find_or_build_store(self) -> str:
        http = self.http
        assert http is not None
        docs = prompts.rag_documents()
        resp = http.get("/v1/vector_stores", params={"limit": 100})
        if resp.status_code == 404:
            raise _RouteMissing("the gateway answered 404 for /v1/vector_stores; RAG is not deployed here")
        resp.raise_for_status()
        for s in resp.json()["data"]:
            counts = s["file_counts"]
            if s["name"] == STORE_NAME and counts["completed"] == len(docs) and not counts["failed"]:
                return str(s["id"])
        file_ids = []
        for doc in docs:
            up = http.post("/v1/files", files={"file": (doc.name, doc.read_bytes(), "text/markdown")},
                           data={"purpose": "assistants"})
            if up.status_code == 404:
                raise _RouteMissing("the gateway answered 404 for /v1/files; RAG is not deployed here")
            up.raise_for_status()
            file_ids.append(up.json()["id"])
        created = http.post("/v1/vector_stores", json={"name": STORE_NAME, "file_ids": file_ids})
        created.raise_for_status()
        store = created.json()
        deadline = time.monotonic() + STORE_READY_TIMEOUT_S
        while store["file_counts"]["in_progress"] and time.monotonic() < deadline:
            gevent.sleep(1.0)
            got = http.get(f"/v1/vector_stores/{store['id']}")
            got.raise_for_status()
            store = got.json()
        counts = store["file_counts"]
        if counts["in_progress"]:
            raise TimeoutError(f"{store['id']} still ingesting after {STORE_READY_TIMEOUT_S:.0f}s")
        if counts["completed"] != len(docs):
            raise ValueError(f"{store['id']}: {counts['failed']} of {len(docs)} files failed to ingest")
        log.info("built vector store %s from %d documents", store["id"], len(docs))
        return str(store["id"])


class _RouteMissing(Exception):
    pass


# -- the profiles -------------------------------------------------------------------------------------------


class StreamingChatUser(FlotillaUser):
    @task
    def one(self) -> None:
        self.chat_stream()


class ChatUser(FlotillaUser):
    @task
    def one(self) -> None:
        self.chat()


class CompletionsUser(FlotillaUser):
    @task
    def one(self) -> None:
        self.completions_stream()


class EmbeddingsUser(FlotillaUser):
    @task
    def one(self) -> None:
        self.embeddings()


class RagChatUser(FlotillaUser):
    @task
    def one(self) -> None:
        self.rag_stream()


class MixedUser(FlotillaUser):
    """Chat-heavy traffic with a bit of everything; routes the gateway lacks are skipped, not failed."""

    @task(6)
    def streamed_chat(self) -> None:
        self.chat_stream()

    @task(2)
    def plain_chat(self) -> None:
        self.chat()

    @task(1)
    def completion(self) -> None:
        self.completions_stream()

    @task(1)
    def embedding(self) -> None:
        self.embeddings()

    @task(1)
    def rag_chat(self) -> None:
        self.rag_stream()
