"""RequestTimeoutMiddleware in front of a real Starlette app, in process, on uvloop (the loop the service runs on)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
import uvloop
from bentoml._internal.server.http.traffic import TimeoutMiddleware as BentoMLTimeoutMiddleware
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.request_timeout import RequestTimeoutMiddleware

TIMEOUT_S = 0.3
# What an outer layer (BentoML's tracing, its request context) puts in the request's contextvars.
REQUEST_STATE: contextvars.ContextVar[object] = contextvars.ContextVar("request_state")


class Sentinel:
    pass


def build_app(cancelled: list[str]) -> Starlette:
    async def slow(request: Request) -> Response:
        try:
            await asyncio.sleep(5 * TIMEOUT_S)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return PlainTextResponse("late")

    async def stream(request: Request) -> Response:
        async def pieces() -> AsyncIterator[str]:
            for i in range(4):
                yield f"{i} "
                await asyncio.sleep(TIMEOUT_S / 2)  # 4 pieces: twice the timeout in all

        return StreamingResponse(pieces())

    async def own_timeout(request: Request) -> Response:
        raise TimeoutError("the app's own, not the request's clock")

    async def quick(request: Request) -> Response:
        return PlainTextResponse("ok")

    endpoints = {"/slow": slow, "/stream": stream, "/own-timeout": own_timeout, "/quick": quick}
    return Starlette(routes=[Route(path, endpoint) for path, endpoint in endpoints.items()])


async def fails_before_responding(scope: Scope, receive: Receive, send: Send) -> None:
    """A layer further in that raises before any response (Starlette's error handler sits outside this layer)."""
    raise RuntimeError("broken before the response")


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def get(app: ASGIApp, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get(path)


def test_no_response_within_the_timeout_is_bentomls_504_and_the_app_is_cancelled() -> None:
    cancelled: list[str] = []
    app = RequestTimeoutMiddleware(build_app(cancelled), timeout=TIMEOUT_S)

    async def main() -> None:
        response = await get(app, "/slow")
        assert response.status_code == 504
        assert response.json() == {"error": f"Not able to process the request in {TIMEOUT_S} seconds"}
        assert cancelled == ["slow"]

    run(main)


def test_a_response_that_has_started_runs_past_the_timeout() -> None:
    app = RequestTimeoutMiddleware(build_app([]), timeout=TIMEOUT_S)

    async def main() -> None:
        response = await get(app, "/stream")
        assert response.status_code == 200
        assert response.text == "0 1 2 3 "

    run(main)


def test_a_timeout_error_of_the_apps_own_is_not_taken_for_the_requests() -> None:
    app = RequestTimeoutMiddleware(build_app([]), timeout=TIMEOUT_S)

    async def main() -> None:
        response = await get(app, "/own-timeout")
        assert response.status_code == 500  # Starlette's error, as without the middleware; not a 504

    run(main)


def test_an_app_that_fails_before_responding_fails_the_request_at_once_not_at_the_timeout() -> None:
    app = ServerErrorMiddleware(RequestTimeoutMiddleware(fails_before_responding, timeout=600))

    async def main() -> None:
        response = await asyncio.wait_for(get(app, "/quick"), timeout=5)  # BentoML's waits out its 600 s
        assert response.status_code == 500

    run(main)


class SetsRequestState:
    """An outer layer: the request's contextvars hold an object of its own while the layers inside run."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.states: list[weakref.ref[Sentinel]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = Sentinel()
        self.states.append(weakref.ref(state))
        token = REQUEST_STATE.set(state)
        del state
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_STATE.reset(token)


def outlives_the_request(timeout_layer: type[Any]) -> bool:
    """Whether what a request's contextvars held is still alive once its response has been read."""
    app = SetsRequestState(timeout_layer(build_app([]), timeout=600))
    kept = False

    async def main() -> None:
        nonlocal kept
        for path in ("/quick", "/stream"):
            assert (await get(app, path)).status_code == 200
        await asyncio.sleep(0.05)  # uvloop frees a cancelled timer's libuv handle on a later turn of the loop
        gc.collect()
        assert len(app.states) == 2
        kept = any(state() is not None for state in app.states)

    run(main)
    return kept


@pytest.mark.parametrize("timeout_layer", [RequestTimeoutMiddleware, BentoMLTimeoutMiddleware])
def test_nothing_of_a_request_outlives_it(timeout_layer: type[Any]) -> None:
    if timeout_layer is BentoMLTimeoutMiddleware:
        # BentoML's own leaves a timer holding a copy of the request's contextvars for the whole timeout (why
        # serving/request_timeout.py exists). If this fails, BentoML has fixed it and the replacement can go.
        assert outlives_the_request(timeout_layer)
    else:
        assert not outlives_the_request(timeout_layer)


def test_lifespan_and_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: Any) -> None:
            pass

        await RequestTimeoutMiddleware(inner, timeout=TIMEOUT_S)({"type": "lifespan"}, receive, send)
        assert seen == ["lifespan"]

    run(main)
