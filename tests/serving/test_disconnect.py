"""DisconnectMiddleware on a real Starlette app served by uvicorn over real sockets (no engine).

The handlers stand in for the service's shapes: a plain endpoint waiting on slow work (NER, ViGGO), a
response with a background task (BentoML's task endpoints), a streamed response, and a handler that listens
for the disconnect itself the way vLLM's `with_cancellation` does.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.servers import free_port
from serving.disconnect import DisconnectMiddleware

STREAM_PIECES = 20


class Events:
    """What the handlers did, waited on from the test's thread."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def record(self, name: str) -> None:
        self._event(name).set()

    def happened(self, name: str) -> bool:
        return self._event(name).is_set()

    def wait(self, name: str, timeout_s: float = 10.0) -> bool:
        return self._event(name).wait(timeout_s)


def build_app(events: Events) -> Starlette:
    async def slow(request: Request) -> Response:
        await request.json()
        events.record("slow started")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.record("slow cancelled")
            raise
        finally:
            await asyncio.sleep(0.01)  # the engine abort awaits too: a cancelled handler must still get to run it
            events.record("slow cleaned up")
        return JSONResponse({"done": True})

    async def quick(request: Request) -> Response:
        await request.json()

        async def later() -> None:
            await asyncio.sleep(1.0)
            events.record("background done")

        return JSONResponse({"accepted": True}, background=BackgroundTask(later))

    async def stream(request: Request) -> Response:
        await request.json()

        async def pieces() -> AsyncIterator[bytes]:
            try:
                for i in range(STREAM_PIECES):
                    await asyncio.sleep(0.05)
                    yield f"{i}\n".encode()
            finally:
                events.record("stream closed")

        return StreamingResponse(pieces(), media_type="text/plain")

    async def listens(request: Request) -> Response:
        # vLLM's with_cancellation: the work in a task of its own, raced against a listener for the disconnect.
        await request.json()

        async def work() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                events.record("listened work cancelled")
                raise

        async def listen() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            events.record("listener heard the disconnect")

        work_task, listen_task = asyncio.create_task(work()), asyncio.create_task(listen())
        events.record("listens started")
        _, pending = await asyncio.wait([work_task, listen_task], return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return JSONResponse({"done": work_task.done()})

    routes = [
        Route("/slow", slow, methods=["POST"]),
        Route("/quick", quick, methods=["POST"]),
        Route("/stream", stream, methods=["POST"]),
        Route("/listens", listens, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(DisconnectMiddleware)])


@pytest.fixture
def served() -> Iterator[tuple[str, Events]]:
    events = Events()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(events), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}", events
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def abandon(address: str, path: str, started: str, events: Events) -> None:
    """Send a complete request, wait until the handler is working on it, then close the connection unread."""
    host, port = address.split(":")
    body = json.dumps({"text": "anything"}).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert events.wait(started), f"{path} never started"
        time.sleep(0.2)


def test_abandoned_request_is_cancelled_and_its_cleanup_runs(served: tuple[str, Events]) -> None:
    address, events = served
    abandon(address, "/slow", "slow started", events)
    assert events.wait("slow cancelled", 5), "the handler kept working for a caller that went away"
    assert events.wait("slow cleaned up", 5), "the cancelled handler's cleanup (an await) did not finish"


def test_handler_that_listens_itself_gets_the_disconnect(served: tuple[str, Events]) -> None:
    address, events = served
    abandon(address, "/listens", "listens started", events)
    assert events.wait("listener heard the disconnect", 5), "the middleware kept the disconnect from the app"
    # Had the middleware cancelled the request's task instead, the work task would be orphaned, still running.
    assert events.wait("listened work cancelled", 5)


def test_abandoned_stream_is_closed(served: tuple[str, Events]) -> None:
    address, events = served
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /stream HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\n\r\n{}".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert events.wait("stream closed", 5)


def test_completed_requests_and_their_background_work_are_left_alone(served: tuple[str, Events]) -> None:
    address, events = served
    with httpx.Client(base_url=f"http://{address}", timeout=10) as client:
        streamed = client.post("/stream", json={})
        accepted = client.post("/quick", json={})
    assert streamed.text.split() == [str(i) for i in range(STREAM_PIECES)]
    assert accepted.json() == {"accepted": True}
    # The client has closed its connection: the work after the response must still run to its end.
    assert events.wait("background done", 5)
    assert not events.happened("slow cancelled")
