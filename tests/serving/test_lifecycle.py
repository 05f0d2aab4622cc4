"""EngineGuardMiddleware before a real Starlette app, and a replica's readiness and liveness as the drain and
the engine change them. The real signals, processes and engine are in tests/lifecycle/."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from serving.admission import Admission
from serving.lifecycle import EngineGuardMiddleware, Lifecycle


class Engine:
    """What Lifecycle reads of vLLM's AsyncLLM: `errored` and `dead_error`."""

    def __init__(self) -> None:
        self.errored = False

    @property
    def dead_error(self) -> BaseException:
        return RuntimeError("stands for vLLM's EngineDeadError")


def guarded_app(failure: list[str | None]) -> EngineGuardMiddleware:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def fails(request: Request) -> JSONResponse:
        failure[0] = "the engine process died (EngineDeadError): ..."  # the engine dies during the request
        return JSONResponse({"detail": "An unexpected error has occurred"}, status_code=500)

    async def livez(request: Request) -> PlainTextResponse:
        return PlainTextResponse("alive?", status_code=503)

    app = Starlette(routes=[Route("/ok", ok), Route("/fails", fails), Route("/livez", livez)])
    return EngineGuardMiddleware(app, failure=lambda: failure[0])


async def get(app: EngineGuardMiddleware, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.get(path)


def test_requests_pass_while_the_engine_serves() -> None:
    response = asyncio.run(get(guarded_app([None]), "/ok"))
    assert response.status_code == 200 and response.text == "ok"


def test_a_dead_engine_gets_503_naming_the_cause_not_the_endpoint() -> None:
    response = asyncio.run(get(guarded_app(["the engine process died (EngineDeadError): retry"]), "/ok"))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"] == {
        "message": "the engine process died (EngineDeadError): retry",
        "type": "service_unavailable",
        "param": None,
        "code": 503,
    }


def test_a_500_caused_by_the_engine_dying_mid_request_becomes_that_503() -> None:
    response = asyncio.run(get(guarded_app([None]), "/fails"))
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("the engine process died")


def test_health_checks_are_not_guarded() -> None:
    response = asyncio.run(get(guarded_app(["dead"]), "/livez"))
    assert response.text == "alive?"  # the endpoint's own answer


def test_readiness_and_liveness_follow_the_drain_and_the_engine() -> None:
    admission = Admission(max_concurrency=4)
    lifecycle = Lifecycle(admission, grace_s=1.0)
    engine = Engine()
    lifecycle.engine = engine  # type: ignore[assignment]
    assert not lifecycle.ready() and lifecycle.alive()  # before the startup hook ends

    lifecycle.started = True
    assert lifecycle.ready() and lifecycle.engine_failure() is None

    admission.begin_drain()
    assert not lifecycle.ready() and lifecycle.alive()  # draining: out of the load balancer, not restarted

    engine.errored = True
    assert not lifecycle.alive()
    assert lifecycle.engine_failure() == (
        "the engine process died (RuntimeError): this replica cannot serve until it is restarted; retry"
    )
