"""The gateway's FastAPI application: OpenAI routes over the fleet's gRPC services."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from flotilla import __version__
from services.gateway import admin, degraded, moderations, rag_routes, tracing
from services.gateway.access import Access, Accounting, estimate_prompt_tokens
from services.gateway.chat import ChatPipeline
from services.gateway.completions import CompletionPipeline
from services.gateway.errors import OpenAIError, install_handlers
from services.gateway.health import Readiness
from services.gateway.keys import ApiKey
from services.gateway.metrics import metrics_endpoint
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.observability import ObservabilityMiddleware
from services.gateway.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    cmpl_id,
    completion_id,
)
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Upstreams

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _max_new(chat: ChatPipeline, model: str, max_tokens: int | None, prompt_estimate: int) -> int:
    """Tokens a request may generate: its max_tokens, else what the model's context leaves."""
    if max_tokens is not None:
        return max_tokens
    card = chat.up.inference.card(model)
    return max((card.max_model_len if card is not None else 2048) - prompt_estimate, 1)


def _response_headers(acct: Accounting, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (the pipeline's own headers), the quota headers, and ``x-flotilla-guard: skipped`` when a guard
    scan of the request was skipped (fail-open). Called once inference has opened, after the deferred part of the
    input scan has answered."""
    headers = {**(base or {}), **(acct.reservation.headers if acct.reservation is not None else {})}
    if acct.guard is not None and acct.guard.skipped:
        headers[degraded.GUARD_HEADER] = "skipped"
    return headers


async def accounted(access: Access, acct: Accounting, events: AsyncIterator[str]) -> AsyncIterator[str]:
    """Stream ``events``; however the stream ends (done, error, client gone), settle and record usage."""
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        access.finish(acct)


async def _accounted_call(access: Access, acct: Accounting, run: Callable[[], Awaitable[Response]]) -> Response:
    streaming = False
    try:
        response = await run()
        streaming = isinstance(response, StreamingResponse)
        return response
    except OpenAIError as exc:
        acct.status = exc.status
        if exc.code == "content_policy_violation":
            acct.guard_verdict = "block"
        raise
    except BaseException:
        acct.status = 500
        raise
    finally:
        if not streaming:  # streams are finished by `accounted` when they end
            access.finish(acct)


def require_key(request: Request) -> ApiKey:
    """Dependency for /v1 routes without their own accounting: a valid API key."""
    return request.app.state.access.authenticate(request)


def create_app(
    settings: GatewaySettings | None = None, upstreams: Upstreams | None = None, access: Access | None = None
) -> FastAPI:
    """Build the app. Tests pass ``upstreams`` made of named fakes and an ``access`` holding their keys;
    otherwise mTLS channels and the Postgres pool are opened at start-up."""
    settings = settings or GatewaySettings()

    def attach(app: FastAPI, up: Upstreams, acc: Access) -> None:
        app.state.settings = settings
        app.state.access = acc
        app.state.upstreams = up
        app.state.chat = ChatPipeline(settings, up)
        app.state.completions = CompletionPipeline(app.state.chat)
        app.state.readiness = Readiness(
            up, acc, settings.ready_cache_s,
            disabled=frozenset() if settings.guard_enabled else frozenset({"guard"}),
            fail_open=frozenset(name for name, on in (("guard", settings.guard_fail_open),
                                                      ("rag", settings.rag_fail_open)) if on),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if upstreams is not None:  # given by the caller, who owns them
            yield
            return
        up = Upstreams.connect(settings)
        await up.start()
        acc = access or await Access.connect(settings)
        attach(app, up, acc)
        # What start-up built (routes, schemas, stubs) lives as long as the process: moved out of the collector's
        # generations, full collections stop re-scanning it (a 30+ ms pause each, seen in p99 under load).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await up.close()
            await acc.close()

    app = FastAPI(title="Flotilla gateway", version=__version__, lifespan=lifespan)
    if upstreams is not None:
        attach(app, upstreams, access or Access(settings, None))
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,
                       path_limits=rag_routes.body_limits())
    app.add_middleware(ObservabilityMiddleware, log_prompts=settings.log_prompts)  # outermost: counts 413s too
    install_handlers(app)
    tracing.instrument_app(app)

    @app.get("/healthz", include_in_schema=False)
    @app.get("/health", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    @app.get("/ready", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: inference, guard, RAG (and Postgres) reachable; see services/gateway/health.py."""
        ok, body = await request.app.state.readiness.check()
        return JSONResponse(body, status_code=200 if ok else 503)

    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)

    async def _models(request: Request) -> ModelList:
        router = request.app.state.upstreams.inference
        await router.ensure_discovered()
        if not router.models():
            await router.refresh()
        return ModelList(
            data=[
                ModelCard(
                    id=m.id,
                    created=m.created,
                    owned_by=m.owned_by,
                    root=m.root or None,
                    max_model_len=m.max_model_len or None,
                )
                for m in router.models()
            ]
        )

    @app.get("/v1/models", response_model=ModelList)
    async def list_models(request: Request, key: Annotated[ApiKey, Depends(require_key)]) -> ModelList:
        listed = await _models(request)
        listed.data = [m for m in listed.data if key.allows(m.id)]
        return listed

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard)
    async def retrieve_model(
        model_id: str, request: Request, key: Annotated[ApiKey, Depends(require_key)]
    ) -> ModelCard:
        for card in (await _models(request)).data:
            if not key.allows(card.id):
                continue
            if card.id == model_id:
                return card
        raise OpenAIError(
            404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        )

    @app.post("/v1/chat/completions", response_model=ChatCompletionResponse)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        access: Access = request.app.state.access
        chat: ChatPipeline = request.app.state.chat
        key = access.authenticate(request)
        access.check_model(key, body.model)
        acct = request.state.acct = Accounting(key, "chat.completions", body.model, request.state.request_id,
                                               id=completion_id())
        tracing.chat_request(acct, body)
        prompt = estimate_prompt_tokens([m.text() for m in body.messages])
        await access.admit(acct, prompt + _max_new(chat, body.model, body.effective_max_tokens, prompt) * (body.n or 1))

        async def run() -> Response:
            prepared = await chat.prepare(body, acct.request_id, key.tenant_id, acct.id, principal=key)
            acct.guard = prepared.guard
            if body.stream:
                events = await chat.open_stream(body, prepared, acct)
                return StreamingResponse(accounted(access, acct, events), media_type="text/event-stream",
                                         headers={**SSE_HEADERS, **_response_headers(acct, prepared.headers)})
            result = await chat.complete(body, prepared, acct)
            return JSONResponse(result.model_dump(), headers=_response_headers(acct, prepared.headers))

        return await _accounted_call(access, acct, run)

    @app.post("/v1/completions", response_model=CompletionResponse)
    async def completions(body: CompletionRequest, request: Request):
        access: Access = request.app.state.access
        pipeline: CompletionPipeline = request.app.state.completions
        key = access.authenticate(request)
        access.check_model(key, body.model)
        acct = request.state.acct = Accounting(key, "completions", body.model, request.state.request_id, id=cmpl_id())
        tracing.chat_request(acct, body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else [p for p in body.prompt if isinstance(p, str)]
        prompt = estimate_prompt_tokens(prompts)
        n = (body.n or 1) * max(len(prompts), 1)
        await access.admit(acct, prompt + _max_new(pipeline.chat, body.model, body.max_tokens, prompt) * n)

        async def run() -> Response:
            plan = await pipeline.prepare(body, acct.request_id, key.tenant_id, principal=key)
            acct.guard = plan.guard
            if body.stream:
                events = await pipeline.open_stream(body, plan, acct)
                return StreamingResponse(accounted(access, acct, events), media_type="text/event-stream",
                                         headers={**SSE_HEADERS, **_response_headers(acct)})
            result = await pipeline.complete(body, plan, acct)
            return JSONResponse(result.model_dump(), headers=_response_headers(acct))

        return await _accounted_call(access, acct, run)

    # After the generation routes, which are matched first (routes are tried in order on every request).
    app.include_router(moderations.router, dependencies=[Depends(require_key)])  # POST /v1/moderations (guard)
    app.include_router(rag_routes.router)  # Files, Vector Stores, Embeddings, Responses (RAG service)
    app.include_router(admin.router)
    return app
