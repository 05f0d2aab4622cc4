"""TrafficMetricsMiddleware against BentoML's own request-metrics middleware, both in front of one real Starlette app,
their series read from prometheus_client's registry: the same series with the same values, for fewer lookups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvloop
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from serving import traffic_metrics
from serving.traffic_metrics import TrafficMetricsMiddleware

# BentoML's class, whatever `install` has put in its module's name since (service.py installs ours there).
BentoMLMetrics = TrafficMetricsMiddleware.__bases__[0]
SKIP = ["/health", "/readyz"]
# (metric name without its namespace, its labels sorted): value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def build_app(streaming: asyncio.Event) -> Starlette:
    async def stream(request: Request) -> Response:
        async def pieces() -> AsyncIterator[str]:
            yield "data: 1\n\n"
            await streaming.wait()  # the test looks at the in-progress gauge meanwhile
            yield "data: [DONE]\n\n"

        return StreamingResponse(pieces(), media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def refused(request: Request) -> Response:
        return PlainTextResponse("too many", status_code=429)

    routes = [Route("/v1/completions", stream, methods=["POST"]), Route("/health", health), Route("/busy", refused)]
    return Starlette(routes=routes)


def series(namespace: str) -> Samples:
    """Every sample of the namespace's metrics, the namespace taken off their names."""
    return {
        (sample.name.removeprefix(namespace + "_"), tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith(namespace + "_")
        for sample in family.samples
    }


def comparable(samples: Samples) -> Samples:
    """What must be equal between two runs of the same requests: what was counted, not the clock's readings (times
    set, durations observed, without the buckets their values fall in)."""
    out: Samples = {}
    for (name, labels), value in samples.items():
        if name == "last_request_timestamp_seconds" or name == "request_duration_seconds_sum":
            out[(name, labels)] = float(value > 0)
        elif name != "request_duration_seconds_bucket" and not name.endswith("_created"):
            out[(name, labels)] = value
    return out


async def drive(app: ASGIApp, streaming: asyncio.Event, namespace: str) -> dict[str, float]:
    """The same requests, in the same order; the in-progress gauge read while a stream is open."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        streaming.clear()
        pending = asyncio.create_task(client.post("/v1/completions", json={"prompt": "x"}))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if (namespace, "/v1/completions") in in_progress_now():
                break
        during = in_progress_now().get((namespace, "/v1/completions"), 0.0)
        streaming.set()
        assert (await pending).status_code == 200
        statuses = [(await client.get(path)).status_code for path in ("/health", "/busy", "/nowhere", "/busy")]
        assert statuses == [200, 429, 404, 429]
    return {"in_progress_during_stream": during}


def in_progress_now() -> dict[tuple[str, str], float]:
    return {
        (family.name.removesuffix("_request_in_progress"), sample.labels["endpoint"]): sample.value
        for family in REGISTRY.collect()
        if family.name.endswith("_request_in_progress")
        for sample in family.samples
    }


def namespaces() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]  # the registry is the process's: each test's metrics of their own
    return f"bentoml_theirs_{tag}", f"bentoml_ours_{tag}"


def test_the_same_series_and_values_as_bentomls() -> None:
    uvloop.run(same_series_and_values())


async def same_series_and_values() -> None:
    theirs_ns, ours_ns = namespaces()
    streaming = asyncio.Event()
    app = build_app(streaming)
    theirs = await drive(BentoMLMetrics(app, namespace=theirs_ns, skip_paths=SKIP), streaming, theirs_ns)
    ours = await drive(TrafficMetricsMiddleware(app, namespace=ours_ns, skip_paths=SKIP), streaming, ours_ns)
    assert theirs == ours == {"in_progress_during_stream": 1.0}
    expected, got = comparable(series(theirs_ns)), comparable(series(ours_ns))
    assert got == expected
    # Not empty on both sides alike: each path and status counted once or twice, durations observed as often.
    totals = {dict(labels)["endpoint"] + " " + dict(labels)["http_response_code"]: v for (n, labels), v in
              got.items() if n == "request_total" and v}  # fmt: skip
    assert totals == {"/v1/completions 200": 1, "/health 200": 1, "/busy 429": 2, "/nowhere 404": 1}
    counts = {k: v for k, v in got.items() if k[0] == "request_duration_seconds_count" and v}
    assert sorted(counts.values()) == [1, 1, 1, 2]
    # The health probe leaves the last request's time alone; the others set it (one series, no endpoint label).
    assert [k for k in got if k[0] == "last_request_timestamp_seconds"] and all(
        "endpoint" not in dict(labels) for name, labels in got if name == "last_request_timestamp_seconds"
    )
    assert all(v == 0 for (name, _), v in got.items() if name == "request_in_progress")


def test_a_probe_alone_does_not_set_the_last_request_time() -> None:
    uvloop.run(probe_alone())


async def probe_alone() -> None:
    theirs_ns, ours_ns = namespaces()
    app = build_app(asyncio.Event())
    for namespace, cls in ((theirs_ns, BentoMLMetrics), (ours_ns, TrafficMetricsMiddleware)):
        transport = httpx.ASGITransport(app=cls(app, namespace=namespace, skip_paths=SKIP))
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            assert (await client.get("/health")).status_code == 200
    stamps = [
        {name: value for (name, _), value in series(namespace).items() if name == "last_request_timestamp_seconds"}
        for namespace in (theirs_ns, ours_ns)
    ]
    assert stamps == [{}, {}]


def test_paths_beyond_the_cache_are_still_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic_metrics, "MAX_CACHED_PATHS", 2)
    uvloop.run(paths_beyond_the_cache())


async def paths_beyond_the_cache() -> None:
    _, ours_ns = namespaces()
    middleware = TrafficMetricsMiddleware(build_app(asyncio.Event()), namespace=ours_ns, skip_paths=SKIP)
    paths = [f"/scan/{i}" for i in range(5)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://service") as client:
        for path in paths + paths:
            assert (await client.get(path)).status_code == 404
    assert len(middleware._paths) == 2 and len(middleware._finished) == 2
    totals = {dict(labels)["endpoint"]: v for (name, labels), v in series(ours_ns).items() if name == "request_total"}
    assert totals == dict.fromkeys(paths, 2.0)
