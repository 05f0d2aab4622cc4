"""Streaming /generate over real HTTP: chunks, chat messages, the BentoML client, 4xx naming the field,
abort on disconnect."""

from __future__ import annotations

import re
import time

import bentoml
import httpx
import pytest

from tests.conftest import ServiceUnderTest


def metric(server: ServiceUnderTest, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.M)]
    assert values, f"{name} not in /metrics"
    return sum(values)


def test_generate_streams_text_in_chunks(server: ServiceUnderTest) -> None:
    chunks: list[str] = []
    with httpx.stream(
        "POST",
        f"{server.url}/generate",
        headers=server.headers,
        timeout=120,
        json={"prompt": "List three colors:", "max_tokens": 24, "temperature": 0},
    ) as response:
        assert response.status_code == 200
        chunks = [chunk for chunk in response.iter_text() if chunk]
    assert len(chunks) > 1, "expected a stream of several chunks"
    assert "".join(chunks).strip()


def test_generate_with_chat_messages_and_seed_is_reproducible(server: ServiceUnderTest) -> None:
    body = {"messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 12, "temperature": 0.9, "seed": 7}
    first = httpx.post(f"{server.url}/generate", headers=server.headers, json=body, timeout=120)
    second = httpx.post(f"{server.url}/generate", headers=server.headers, json=body, timeout=120)
    assert first.status_code == 200 and first.text.strip()
    assert first.text == second.text


def test_bentoml_python_client_streams(server: ServiceUnderTest) -> None:
    with bentoml.SyncHTTPClient(server.url, token=server.api_key, timeout=120) as client:
        pieces = list(client.generate(prompt="Once upon a time", max_tokens=16, temperature=0))
    assert len(pieces) > 1 and "".join(pieces).strip()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "hi", "max_tokens": 100_000}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p"),
        ({"prompt": ["not", "a", "string"]}, "prompt"),
        ({"prompt": "hi", "adapter": "no-such-adapter"}, "adapter"),
        ({"prompt": "word " * 2000, "max_tokens": 100}, "max_tokens"),
    ],
)
def test_bad_generate_requests_get_4xx_naming_the_field(server: ServiceUnderTest, body: dict, field: str) -> None:
    response = httpx.post(f"{server.url}/generate", headers=server.headers, json=body, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


def test_disconnect_aborts_the_engine_request(server: ServiceUnderTest) -> None:
    with httpx.stream(
        "POST",
        f"{server.url}/generate",
        headers=server.headers,
        timeout=120,
        json={"prompt": "Count from one to one thousand:", "max_tokens": 1500, "temperature": 0},
    ) as response:
        stream = response.iter_text()
        next(stream)
        next(stream)
        assert metric(server, "vllm:num_requests_running") >= 1
    # Leaving the block closes the connection mid-stream.
    deadline = time.monotonic() + 30
    while metric(server, "vllm:num_requests_running") > 0:
        assert time.monotonic() < deadline, "the engine kept running the abandoned request"
        time.sleep(0.5)
