"""Admission control on the shared live service: beyond max_concurrency (SERVICE_MAX_CONCURRENCY in
tests/conftest.py) every endpoint, /v1 included, answers a fast 429 with Retry-After in the OpenAI error
shape, while /livez stays fast. The slots are held by real token streams, closed (aborted) at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx

from tests.conftest import SERVICE_MAX_CONCURRENCY, ServiceUnderTest

# ignore_eos: a stream that sampled its end early would free its slot and let a request the test expects to be
# refused in (it happened in CI with /generate at temperature 1.0).
LONG_STREAM = {
    "model": "SmolLM2-135M-Instruct",
    "prompt": "Once upon a time",
    "max_tokens": 1500,
    "ignore_eos": True,
    "stream": True,
}


def hold_slot(stack: ExitStack, client: httpx.Client, server: ServiceUnderTest) -> Iterator[bytes]:
    """A /v1 stream that has started and cannot end early: it holds its admission slot until the stack closes
    it."""
    response = stack.enter_context(client.stream("POST", f"{server.url}/v1/completions", json=LONG_STREAM))
    assert response.status_code == 200, response.read()
    return response.iter_bytes()


def test_beyond_max_concurrency_requests_get_a_fast_429_and_livez_stays_fast(server: ServiceUnderTest) -> None:
    limits = httpx.Limits(max_connections=SERVICE_MAX_CONCURRENCY + 8)
    with httpx.Client(headers=server.headers, timeout=120, limits=limits) as client, ExitStack() as stack:
        streams = [hold_slot(stack, client, server) for _ in range(SERVICE_MAX_CONCURRENCY)]
        assert all(next(stream) for stream in streams)  # every stream is producing

        refusals = [
            client.post(f"{server.url}/generate", json={"prompt": "hi", "max_tokens": 4}),
            client.post(f"{server.url}/extract_entities", json={"text": "Tim Cook runs Apple."}),
            client.post(
                f"{server.url}/v1/completions", json={"model": "SmolLM2-135M-Instruct", "prompt": "hi", "max_tokens": 4}
            ),
            client.get(f"{server.url}/v1/models"),
        ]
        for refused in refusals:
            assert refused.status_code == 429, (refused.request.url, refused.text)
            assert int(refused.headers["retry-after"]) >= 1
            error = refused.json()["error"]
            assert error["type"] == "rate_limit_exceeded" and error["code"] == 429
            assert "max_concurrency" in error["message"]
            # Refused at the door, not after queueing behind the streams.
            assert refused.elapsed.total_seconds() < 2.0, refused.elapsed

        started = time.monotonic()
        assert client.get(f"{server.url}/livez").status_code == 200
        assert time.monotonic() - started < 2.0
        assert all(next(stream) for stream in streams)  # the admitted streams were not disturbed

    # The streams were closed (their engine requests aborted): the slots are free again.
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    metrics = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    assert 'admission_rejected_total{reason="overloaded"}' in metrics
