"""AdmissionMiddleware in front of a real Starlette app served by uvicorn over real sockets (no engine).

The app has the service's shapes: a streamed endpoint, vLLM's app mounted at /v1, health checks and
metrics. Its streams send a piece every few milliseconds (as token streams do) until the test opens
their gate, so the test decides how long each request stays in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from bench.servers import free_port
from serving.admission import Admission, AdmissionMiddleware


@dataclass
class Served:
    url: str
    admission: Admission
    gate: threading.Event


def build_app(admission: Admission, gate: threading.Event) -> Starlette:
    async def pieces() -> AsyncIterator[str]:
        yield "first "
        while not gate.is_set():
            yield "."
            await asyncio.sleep(0.02)
        yield " last"

    async def stream(request: Request) -> Response:
        await request.body()
        return StreamingResponse(pieces(), media_type="text/plain")

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    openai_app = Starlette(routes=[Route("/completions", stream, methods=["POST"])])
    return Starlette(
        routes=[
            Route("/generate", stream, methods=["POST"]),
            Route("/livez", ok),
            Route("/readyz", ok),
            Route("/metrics", ok),
            Mount("/v1", app=openai_app),
        ],
        middleware=[Middleware(AdmissionMiddleware, admission=admission)],
    )


def serve(max_concurrency: int) -> Iterator[Served]:
    admission = Admission(max_concurrency)
    gate = threading.Event()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(admission, gate), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", admission, gate)
    finally:
        gate.set()
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def two_slots() -> Iterator[Served]:
    yield from serve(2)


@pytest.fixture
def one_slot() -> Iterator[Served]:
    yield from serve(1)


def open_stream(stack: ExitStack, client: httpx.Client, url: str) -> Iterator[bytes]:
    """Start a streamed request and read its first piece: from then on it holds a slot."""
    response = stack.enter_context(client.stream("POST", url, json={}))
    assert response.status_code == 200
    chunks = response.iter_bytes()
    assert next(chunks).startswith(b"first")
    return chunks


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("admission_rejected_total", {"reason": reason}) or 0.0


def wait_until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_beyond_the_bound_every_endpoint_gets_a_fast_429_while_health_checks_answer(two_slots: Served) -> None:
    url = two_slots.url
    before = rejected("overloaded")
    with httpx.Client(timeout=10) as client, ExitStack() as stack:
        streams = [open_stream(stack, client, f"{url}/generate"), open_stream(stack, client, f"{url}/v1/completions")]
        assert two_slots.admission.in_flight == 2

        for path in ("/generate", "/v1/completions"):
            started = time.monotonic()
            refused = client.post(f"{url}{path}", json={})
            assert time.monotonic() - started < 1.0
            assert refused.status_code == 429, path
            assert refused.headers["retry-after"] == "1"
            error = refused.json()["error"]
            assert error["type"] == "rate_limit_exceeded" and error["code"] == 429
            assert "max_concurrency" in error["message"]
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(f"{url}{path}").status_code == 200, path
        assert rejected("overloaded") == before + 2

        # The admitted streams were never disturbed: they run to their end, then their slots are free.
        two_slots.gate.set()
        for chunks in streams:
            assert b"".join(chunks).endswith(b" last")
        wait_until(lambda: two_slots.admission.in_flight == 0)
        assert client.post(f"{url}/generate", json={}).text.endswith(" last")


def test_a_stream_holds_its_slot_until_it_ends_and_a_disconnect_frees_it(one_slot: Served) -> None:
    url = one_slot.url
    with httpx.Client(timeout=10) as client:
        with ExitStack() as stack:
            chunks = open_stream(stack, client, f"{url}/generate")
            time.sleep(0.3)  # many pieces later, still in flight
            assert one_slot.admission.in_flight == 1
            assert client.post(f"{url}/v1/completions", json={}).status_code == 429
            assert next(chunks).strip(b".") == b""  # still streaming
        # Leaving the block closed the connection mid-stream: the caller is gone.
        wait_until(lambda: one_slot.admission.in_flight == 0)
        one_slot.gate.set()
        assert client.post(f"{url}/v1/completions", json={}).status_code == 200


def test_draining_refuses_new_requests_with_503_and_keeps_health_checks(one_slot: Served) -> None:
    url = one_slot.url
    before = rejected("draining")
    one_slot.admission.begin_drain()
    with httpx.Client(timeout=10) as client:
        for path in ("/generate", "/v1/completions"):
            refused = client.post(f"{url}{path}", json={})
            assert refused.status_code == 503, path
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "service_unavailable"
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(f"{url}{path}").status_code == 200, path
    assert rejected("draining") == before + 2


def test_wait_idle_returns_once_the_last_request_leaves() -> None:
    async def scenario() -> None:
        admission = Admission(4)
        assert await admission.wait_idle(0.01)
        assert admission.try_enter() is None
        assert admission.try_enter() is None
        assert not await admission.wait_idle(0.05)
        waiter = asyncio.create_task(admission.wait_idle(5))
        admission.leave()
        await asyncio.sleep(0.05)
        assert not waiter.done()
        admission.leave()
        assert await waiter

    asyncio.run(scenario())
