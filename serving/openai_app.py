"""vLLM's own OpenAI-compatible app (/v1/chat/completions, /v1/completions, /v1/models, ...) on the
service's engine: no second engine, no hand-written protocol.

The app can only be built once the engine runs (vLLM asks the engine which tasks it supports), but
BentoML mounts ASGI apps when the class is defined. `LateOpenAIApp` is mounted at `/v1` then and
receives vLLM's app in the service's startup hook. A mount's lifespan never runs, so `start` runs
vLLM's own: it freezes the startup heap out of the garbage collector (without it, full collections
over torch/vLLM/BentoML's objects stall the event loop that streams every token) and logs engine
stats periodically, as `vllm serve` does.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

from serving.errors import ServiceError, UnavailableError, error_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send
    from vllm.engine.protocol import EngineClient


# vLLM's routes, all under the service's /v1 mount.
OPENAI_PREFIX = "/v1/"


def _vllm_app_builders() -> tuple[Any, Any]:
    try:  # vLLM >= 0.30
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.app import build_app
    except ImportError:  # vLLM 0.25
        from vllm.entrypoints.openai.api_server import build_app, init_app_state
    return build_app, init_app_state


async def build_openai_app(engine: EngineClient, args: argparse.Namespace) -> Any:
    build_app, init_app_state = _vllm_app_builders()
    supported_tasks = await engine.get_supported_tasks()
    app = build_app(args, supported_tasks)
    await init_app_state(engine, app.state, args, supported_tasks)
    # The adapter store's LoRA resolver raises the service's errors from inside vLLM's handlers (/v1 `model`).
    app.add_exception_handler(ServiceError, _service_error)
    # build_app already built the middleware stack (its SageMaker bootstrap does), which holds the exception
    # handlers as they were then: rebuild it, as that bootstrap does, so that this one is in it.
    app.middleware_stack = app.build_middleware_stack()
    return app


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


class LateOpenAIApp:
    """An ASGI app that answers 503 until vLLM's app is attached, then forwards to it."""

    def __init__(self) -> None:
        self.app: Any = None
        self._lifespan = contextlib.AsyncExitStack()

    async def start(self, app: Any) -> None:
        """Run vLLM's app lifespan (call last in startup: it freezes the heap built so far), then serve it."""
        await self._lifespan.enter_async_context(app.router.lifespan_context(app))
        self.app = app

    async def stop(self) -> None:
        self.app = None
        await self._lifespan.aclose()

    @property
    def state(self) -> Any:
        """vLLM's app state (its OpenAIServingModels holds the LoRA adapters)."""
        if self.app is None:
            raise RuntimeError("the OpenAI-compatible app is not attached yet")
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            await error_response(UnavailableError("the engine is still starting", retry_after_s=5))(
                scope, receive, send
            )
            return
        if "app_root_path" in scope:
            # Through BentoML's /v1 mount: vLLM's routes carry their full path (/v1/...), so undo its prefix.
            scope = dict(scope, root_path=scope["app_root_path"])
        await self.app(scope, receive, send)


class DirectToOpenAIApp:
    """Sends `/v1/...` requests straight to vLLM's app, past the middlewares and the router inside this one.

    Added right after the front door's checks (API key, admission, engine guard, request limits), it skips what
    /v1 never uses: the checks of the service's own endpoints (content type, the docs, the disconnect watch),
    BentoML's request context, and its router's scan of every route before the /v1 mount. That is about 80 us of
    event-loop time per request on this CPU (`python -m bench.asgi_layers`), and a burst of 64 long prompts pays
    it 64 times over before the last one reaches the engine. BentoML's own layers outside this one (metrics,
    access log, timeout) still see every request.
    """

    def __init__(self, app: ASGIApp, openai_app: ASGIApp) -> None:
        self.app = app
        self.openai_app = openai_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(OPENAI_PREFIX):
            await self.openai_app(scope, receive, send)
        else:
            await self.app(scope, receive, send)
