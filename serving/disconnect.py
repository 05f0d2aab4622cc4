"""Disconnect means abort, on every endpoint: a request whose caller went away stops its engine work.

A streamed response notices a gone caller (Starlette listens for `http.disconnect` while it streams), and so
do vLLM's own /v1 handlers (`with_cancellation`), but a plain BentoML endpoint (NER, a 64-item batch, ViGGO)
only talks to the connection again when its answer is ready: without this its engine requests would run to
the end for nobody. `DisconnectMiddleware` watches the connection once the request body has been read. When
the caller disconnects before the response is complete:
- if the app is itself waiting for `http.disconnect` (a `receive()` call is pending), it gets that message
  and handles it its own way. It must: vLLM's `with_cancellation` runs the handler in a task of its own,
  which cancelling the request's task would orphan;
- otherwise the task that handles the request is cancelled. The cancellation reaches `Generator.stream`,
  whose `finally` aborts the engine request (and `asyncio.gather` in a batch cancels every item).

The watcher becomes the only reader of the connection; a `receive()` by the app afterwards gets the message
the watcher read, so no message is stolen. Once the response is complete nothing is cancelled any more: work
that runs after it (background tasks, such as BentoML's task endpoints running a job) outlives the caller.

vLLM's own app (/v1) never reaches it (`DirectToOpenAIApp` sends /v1 past it): its handlers abort on a disconnect
themselves, as under `vllm serve`, and a wrapper there would be one more call on every streamed chunk of the path
that carries the most chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from serving.errors import ServiceError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class ClientDisconnected(ServiceError):
    """Nobody reads this answer; it exists so that the access log and metrics show 499, not a hang."""

    status = 499  # nginx's "client closed request", what dashboards know this case as
    type = "client_closed_request"


class _Exchange:
    """One request's connection: reads the body for the app, then watches for the caller going away."""

    def __init__(self, receive: Receive, send: Send, handler: asyncio.Task[object]) -> None:
        self._receive = receive
        self._send = send
        self._handler = handler
        self._watcher: asyncio.Task[Message] | None = None
        self._app_readers = 0  # receive() calls of the app waiting for the watcher's message
        self.response_started = False
        self.response_complete = False
        self.abandoned = False

    async def receive(self) -> Message:
        if self._watcher is not None:
            self._app_readers += 1
            try:
                # Shielded: a reader that gives up waiting (a finished stream's listener) must not stop the watch.
                return await asyncio.shield(self._watcher)
            finally:
                self._app_readers -= 1
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._watcher = asyncio.create_task(self._watch(), name="disconnect-watcher")
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
        # Flagged before sending: the server answers `http.disconnect` to every read once the response is done,
        # and the watcher may see that read before this send returns.
        if message["type"] == "http.response.pathsend" or (
            message["type"] == "http.response.body" and not message.get("more_body", False)
        ):
            self.response_complete = True
        await self._send(message)

    async def _watch(self) -> Message:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
        if not self.response_complete and not self._app_readers:
            self.abandoned = True
            self._handler.cancel()
        return message

    def close(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


class DisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = asyncio.current_task()
        assert handler is not None  # an ASGI app always runs in a task
        exchange = _Exchange(receive, send, handler)
        started = time.monotonic()
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except asyncio.CancelledError:
            # Re-raise a cancellation that came from elsewhere too (server shutdown): uncancel() counts them.
            if not exchange.abandoned or handler.uncancel() > 0:
                raise
            log.info(
                "caller of %s %s went away after %.1f s: request cancelled, its engine work aborted",
                scope["method"],
                scope["path"],
                time.monotonic() - started,
            )
            if not exchange.response_started:
                # The connection is gone, so this reaches nobody; it completes the response for the middlewares
                # outside (access log, metrics, BentoML's timeout, which would otherwise wait for a first byte).
                with contextlib.suppress(Exception):
                    await error_response(ClientDisconnected("the client closed the connection"))(scope, receive, send)
        finally:
            exchange.close()
