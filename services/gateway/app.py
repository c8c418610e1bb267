"""The gateway's FastAPI application: OpenAI routes over the fleet's gRPC services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from flotilla import __version__
from services.gateway import moderations, rag_routes
from services.gateway.chat import ChatPipeline
from services.gateway.completions import CompletionPipeline
from services.gateway.errors import OpenAIError, install_handlers
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
)
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Upstreams

log = logging.getLogger(__name__)

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def create_app(settings: GatewaySettings | None = None, upstreams: Upstreams | None = None) -> FastAPI:
    """Build the app. Tests pass ``upstreams`` made of named fakes; otherwise mTLS channels are opened."""
    settings = settings or GatewaySettings()

    def attach(app: FastAPI, up: Upstreams) -> None:
        app.state.upstreams = up
        app.state.chat = ChatPipeline(settings, up)
        app.state.completions = CompletionPipeline(app.state.chat)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if upstreams is not None:  # given by the caller, who owns them
            yield
            return
        up = Upstreams.connect(settings)
        await up.start()
        attach(app, up)
        try:
            yield
        finally:
            await up.close()

    app = FastAPI(title="Flotilla gateway", version=__version__, lifespan=lifespan)
    if upstreams is not None:
        attach(app, upstreams)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,
                       path_limits=rag_routes.body_limits())
    app.include_router(moderations.router)  # POST /v1/moderations (the guard's scanners)
    app.include_router(rag_routes.router)  # Files, Vector Stores, Embeddings, Responses (RAG service)
    install_handlers(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Readiness: every upstream reports SERVING over mTLS."""
        statuses = await request.app.state.upstreams.check()
        ok = all(s == "SERVING" for s in statuses.values())
        return JSONResponse({"ready": ok, "upstreams": statuses}, status_code=200 if ok else 503)

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
    async def list_models(request: Request) -> ModelList:
        return await _models(request)

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard)
    async def retrieve_model(model_id: str, request: Request) -> ModelCard:
        for card in (await _models(request)).data:
            if card.id == model_id:
                return card
        raise OpenAIError(
            404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        )

    @app.post("/v1/chat/completions", response_model=ChatCompletionResponse)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        chat: ChatPipeline = request.app.state.chat
        prepared = await chat.prepare(body, request.state.request_id)
        if body.stream:
            events = await chat.open_stream(body, prepared)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={**SSE_HEADERS, **prepared.headers}
            )
        result = await chat.complete(body, prepared)
        return JSONResponse(result.model_dump(), headers=prepared.headers)

    @app.post("/v1/completions", response_model=CompletionResponse)
    async def completions(body: CompletionRequest, request: Request):
        pipeline: CompletionPipeline = request.app.state.completions
        rid = request.state.request_id
        requests = await pipeline.prepare(body, rid)
        if body.stream:
            events = await pipeline.open_stream(body, requests, rid)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        return JSONResponse((await pipeline.complete(body, requests, rid)).model_dump())

    return app
