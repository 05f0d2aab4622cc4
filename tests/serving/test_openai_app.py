"""LateOpenAIApp mounted at /v1 in a real Starlette app: 503 in the error shape until the engine's app is
attached, then every /v1 path reaches it with its full path, and its lifespan runs from start to stop.
DirectToOpenAIApp sends /v1 requests to it without the app inside (the service's router and mount)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.openai_app import DirectToOpenAIApp, LateOpenAIApp


def vllm_like_app(events: list[str]) -> Starlette:
    """Stands where vLLM's FastAPI app goes: routes with their full /v1 path and a lifespan of its own."""

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"data": [{"id": "m"}], "path": request.url.path})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("lifespan started")
        yield
        events.append("lifespan ended")

    app = Starlette(routes=[Route("/v1/models", models)], lifespan=lifespan)
    app.state.serving_models = "vLLM's OpenAIServingModels"
    return app


async def get(service: ASGIApp, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://service") as client:
        return await client.get(path)


def test_before_start_every_v1_path_is_503_with_retry_after() -> None:
    late = LateOpenAIApp()
    service = Starlette(routes=[Mount("/v1", app=late)])
    for path in ("/v1/models", "/v1/chat/completions"):
        response = asyncio.run(get(service, path))
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": {"message": "the engine is still starting", "type": "service_unavailable", "param": None,
                      "code": 503}
        }  # fmt: skip
    with pytest.raises(RuntimeError, match="not attached"):
        _ = late.state


def test_after_start_requests_reach_the_app_with_their_full_path_until_stop() -> None:
    events: list[str] = []

    async def scenario() -> None:
        late = LateOpenAIApp()
        service = Starlette(routes=[Mount("/v1", app=late)])
        await late.start(vllm_like_app(events))
        assert events == ["lifespan started"]
        response = await get(service, "/v1/models")
        assert response.status_code == 200
        assert response.json() == {"data": [{"id": "m"}], "path": "/v1/models"}
        assert late.state.serving_models == "vLLM's OpenAIServingModels"
        await late.stop()
        assert events == ["lifespan started", "lifespan ended"]
        assert (await get(service, "/v1/models")).status_code == 503

    asyncio.run(scenario())


def test_direct_route_sends_v1_to_the_openai_app_and_the_rest_inward() -> None:
    events: list[str] = []
    inward: list[str] = []

    async def scenario() -> None:
        late = LateOpenAIApp()
        inner = Starlette(routes=[Mount("/v1", app=late), Route("/generate", lambda _: JSONResponse({"ok": True}))])

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            inward.append(f"{scope['type']} {scope.get('path', '')}")
            await inner(scope, receive, send)

        front = DirectToOpenAIApp(recording, openai_app=late)
        assert (await get(front, "/v1/models")).status_code == 503  # before the engine's app: the late app's answer
        await late.start(vllm_like_app(events))
        response = await get(front, "/v1/models")
        assert response.status_code == 200
        assert response.json() == {"data": [{"id": "m"}], "path": "/v1/models"}
        assert (await get(front, "/generate")).json() == {"ok": True}
        # /v1 without the slash is no route of vLLM's: the router inside answers it as before (its redirect).
        assert (await get(front, "/v1")).status_code == 307
        await late.stop()

    asyncio.run(scenario())
    assert inward == ["http /generate", "http /v1"]
