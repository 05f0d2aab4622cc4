"""The service's AccessLogMiddleware against BentoML's own, both in front of one real Starlette app: the same lines on
the same logger, request by request, for every combination of BentoML's `logging.access` options."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from serving import access_log
from serving.access_log import AccessLogMiddleware

# BentoML's class, whatever `install` has put in its module's name since (service.py installs ours there).
BentoMLAccessLog = AccessLogMiddleware.__bases__[0]
OPTIONS = ["request_content_length", "request_content_type", "response_content_length", "response_content_type"]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        # The latency is the one thing that differs between two runs of the same requests.
        return [re.sub(r" \d+\.\d{3}ms$", " <latency>ms", r.getMessage()) for r in self.records]


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("bentoml.access")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def build_app() -> Starlette:
    async def stream(request: Request) -> Response:
        body = await request.body()

        async def pieces() -> AsyncIterator[str]:
            for i in range(5):
                yield f"data: {i} {len(body)}\n\n"
                await asyncio.sleep(0)

        return StreamingResponse(pieces(), media_type="text/event-stream")

    async def answer(request: Request) -> Response:
        return JSONResponse({"ok": True}, status_code=201)

    async def health(request: Request) -> Response:
        return Response("ok")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return Starlette(
        routes=[
            Route("/v1/completions", stream, methods=["POST"]),
            Route("/answer", answer),
            Route("/health", health),
            WebSocketRoute("/ws", echo),
        ]
    )


async def drive(app: ASGIApp) -> None:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5123))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        streamed = await client.post("/v1/completions", json={"prompt": "hello"})
        assert streamed.status_code == 200 and streamed.text.count("data:") == 5
        statuses = [(await client.get(path)).status_code for path in ("/answer", "/health", "/nowhere")]
        assert statuses == [201, 200, 404]
        # a method the route does not take: Starlette answers it, and it is logged like any other
        assert (await client.put("/answer")).status_code == 405


@pytest.mark.parametrize("options", [set(), set(OPTIONS), {"request_content_type", "response_content_length"}])
def test_the_same_lines_as_bentomls(lines: Lines, options: set[str]) -> None:
    kwargs = {f"has_{option}": option in options for option in OPTIONS}
    app = build_app()
    uvloop.run(drive(BentoMLAccessLog(app, skip_paths=["/health"], **kwargs)))
    theirs, lines.records[:] = lines.messages(), []
    uvloop.run(drive(AccessLogMiddleware(app, skip_paths=["/health"], **kwargs)))
    assert lines.messages() == theirs
    assert len(theirs) == 4  # every request but the skipped probe
    assert theirs[0].startswith("10.0.0.7:5123 (scheme=http,method=POST,path=/v1/completions")
    if "request_content_type" in options:
        assert "type=application/json" in theirs[0]
    if options == set(OPTIONS):
        assert re.fullmatch(r".*\(status=201,type=application/json,length=11\) <latency>ms", theirs[1])
    # The record itself: BentoML's logger and level, the latency a number its format can print.
    record = lines.records[0]
    assert (record.name, record.levelno, record.pathname) == ("bentoml.access", logging.INFO, access_log.__file__)
    assert isinstance(record.args, tuple) and float(record.args[-1]) >= 0  # type: ignore[arg-type]


def test_no_line_and_the_same_answers_when_the_logger_is_off(lines: Lines) -> None:
    logging.getLogger("bentoml.access").setLevel(logging.WARNING)
    uvloop.run(drive(AccessLogMiddleware(build_app(), skip_paths=["/health"])))
    assert lines.records == []


def test_websockets_are_logged_as_bentoml_logs_them(lines: Lines) -> None:
    messages = []
    for cls in (BentoMLAccessLog, AccessLogMiddleware):
        with TestClient(cls(build_app())) as client, client.websocket_connect("/ws") as websocket:
            websocket.send_text("hi")
            assert websocket.receive_text() == "hi"
        messages.append(lines.messages())
        lines.records[:] = []
    assert messages[0] == messages[1] and any("Connection established" in m for m in messages[0])
