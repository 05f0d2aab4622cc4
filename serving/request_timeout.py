"""BentoML's request timeout (`traffic.timeout`), with its clock stopped when the response starts.

BentoML 1.4's `TimeoutMiddleware` arms `loop.call_later(timeout, ...)` for every request, never cancels it, and runs
the rest of the app in a task of its own. With the service's timeout (600 s), every request leaves its timer behind
for ten minutes after it ended: a timer handle, a future, a bound method and a copy of the request's contextvars. At a
few hundred requests a minute those outlive the young collections by the thousand, and Python's full collections,
which scan them all, run more often and longer than in raw `vllm serve`, on the event loop that streams every token:
in a paired run on an H200, 7 in the service's worker (6-12 ms each) against 4 in raw's API server (at most 7 ms)
(`GCWATCH=1 bash bench/gpu_run.sh up`, README "machines M and N"), each a stall for every request on that loop.

`install()` puts this class where BentoML builds its middleware stack from, before the worker builds the app: the same
limit from the same setting (`traffic.timeout`, `request_timeout_s`), in the same place in the stack, with the same
answer (504 and BentoML's body when no response has started within the timeout; a response that has started runs to its
end), the app in a task of its own as under BentoML's, and no timer left once the response has started (nor once the
app has ended without one: an error before the response reaches the layers above at once, where BentoML's waits out the
timeout).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        expired = started = False

        async def timed_send(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                timer.cancel()  # the response has started: it runs to its end
            await send(message)

        # The app runs in a task of its own, as under BentoML's, so that the timer's end is the one difference (on
        # an H100, machine P, the service was slower with the app in the request's task than before the change,
        # but the old one ran without the GC watcher; on the CPU the two structures measure the same: README).
        app = asyncio.ensure_future(self.app(scope, receive, timed_send))

        def expire() -> None:
            nonlocal expired
            expired = app.cancel()

        timer = loop.call_later(self.timeout, expire)
        try:
            await app
        except BaseException:
            # The timer's cancellation, or whatever the app raised on it; not one of the request's own (the client
            # gone, the server stopping), which goes on up.
            current = asyncio.current_task()
            if not expired or started or (current is not None and current.cancelling()):
                raise
        finally:
            timer.cancel()
        if expired and not started:
            body = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(body, status_code=504)(scope, receive, send)


def install() -> None:
    """Make BentoML's app factory use `RequestTimeoutMiddleware` (it imports the class when it builds the stack)."""
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = RequestTimeoutMiddleware  # type: ignore[misc,assignment]
