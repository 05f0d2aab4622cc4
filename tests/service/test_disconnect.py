"""Disconnect means abort on the plain (non-streaming) endpoints: a caller that goes away leaves no engine work.

`/generate`'s stream is covered in test_generate.py; here NER (single and batch) and ViGGO, whose handlers
would otherwise run every engine request to its end for nobody, and vLLM's /v1, which aborts by itself (the
service's disconnect watch skips it).
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ServiceUnderTest

ONE_TOKEN = {"prompt": "Hi", "max_tokens": 1}
# The longest an engine step in flight may take (see assert_engine_goes_idle).
STEP_TIMEOUT_S = 300
LONG_TEXT = " ".join(
    [
        "Angela Merkel met Emmanuel Macron and Justin Trudeau in Berlin on 4 March 2019.",
        "Siemens, Volkswagen and the World Bank sent delegates from Munich, Paris and Toronto.",
        "Tim Cook of Apple and Sundar Pichai of Google spoke in Austin on Tuesday, 12 May 2020.",
    ]
    * 6
)


def engine_requests(server: ServiceUnderTest, state: str) -> float:
    """`vllm:num_requests_{state}`; vLLM leaves the gauge unset (absent from /metrics) until its first engine step."""
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    return sum(float(v) for v in re.findall(rf"^vllm:num_requests_{state}\{{[^}}]*\}} (\S+)$", text, re.M))


def answered(server: ServiceUnderTest, path: str, status: int) -> float:
    """How many requests to `path` BentoML's own metrics counted with `status`."""
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    labels = rf'(?=[^}}]*endpoint="{re.escape(path)}")(?=[^}}]*http_response_code="{status}")'
    return sum(float(v) for v in re.findall(rf"^bentoml_service_request_total\{{{labels}[^}}]*\}} (\S+)$", text, re.M))


@pytest.mark.parametrize(
    ("path", "body", "gives_up_after"),
    [
        # 64 long texts: minutes of engine work, far beyond the deadline below, unless it is aborted.
        ("/extract_entities_batch", {"items": [{"text": LONG_TEXT}] * 64, "persist": False}, 1.5),
        ("/extract_entities", {"text": LONG_TEXT, "persist": False}, 1.5),
        # One short MR: on a quiet machine it can be done in about a second, so this caller leaves at once.
        ("/viggo", {"sentence": "Blizzard North released Diablo II for the Mac and I think it's good."}, 0.0),
    ],
)
def test_abandoned_request_leaves_no_engine_work(
    server: ServiceUnderTest, path: str, body: dict[str, Any], gives_up_after: float
) -> None:
    """The caller leaves while the engine works on its request: the handler is cancelled and the engine idles.

    A short request (one ViGGO MR) can be answered before the caller leaves: before the engine is seen working on
    it, or in the moment between that look and the connection closing. BentoML then counts a 200, not a 499. That
    try tested nothing, so it is made again, a few times at most; CI failed twice on a single try.
    """
    for _ in range(10):
        before = {status: answered(server, path, status) for status in (200, 499)}
        leave_during_engine_work(server, path, body, gives_up_after)
        assert_engine_goes_idle(server, path)
        # 499 is counted only where the handler was cancelled: the request was abandoned, not answered.
        if cancelled(server, path, before):
            return
    raise AssertionError(f"{path} was answered every time before its caller left")


def cancelled(server: ServiceUnderTest, path: str, before: dict[int, float]) -> bool:
    """Whether BentoML counted the one request sent since `before` as cancelled (499) rather than answered (200).

    Metrics land a moment after the answer, so this waits until the request is counted one way or the other.
    """
    deadline = time.monotonic() + 10
    while True:
        grown = {status: answered(server, path, status) - count for status, count in before.items()}
        if sum(grown.values()) >= 1:
            assert sum(grown.values()) == 1, f"{path}: one request sent, BentoML counted {grown}"
            return grown[499] == 1
        assert time.monotonic() < deadline, f"{path}: one request sent, BentoML counted {grown}"
        time.sleep(0.2)


def leave_during_engine_work(server: ServiceUnderTest, path: str, body: dict[str, Any], gives_up_after: float) -> bool:
    """POST `body` on a raw socket, wait until the engine works on it, then close the connection (the disconnect).

    False when it was answered (200) before the engine was seen working on it: a short request (one ViGGO MR) can
    be, between two looks at the engine's gauges on a quiet machine.
    """
    url = urlsplit(server.url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {server.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + payload)
        deadline = time.monotonic() + 120  # a 2-core machine shared by several services can be that slow
        # Waiting counts too: requests wait there while their output grammar compiles.
        while engine_requests(server, "running") + engine_requests(server, "waiting") < 1:
            if select.select([sock], [], [], 0)[0]:  # answered before it was seen at the engine
                answer = sock.recv(200).decode(errors="replace").split("\r\n", 1)[0]
                assert answer.startswith("HTTP/1.1 200"), f"{path} answered {answer!r} instead of working"
                return False
            assert time.monotonic() < deadline, f"{path} never reached the engine"
            time.sleep(0.1)
        time.sleep(gives_up_after)  # the caller gives up, as the one in the bug report did
        return True


def assert_engine_goes_idle(server: ServiceUnderTest, path: str) -> None:
    # The engine takes the aborts between steps, and the step in flight when they come runs to its end first. On the
    # CPU build a step through a LoRA adapter is slow: 2,048 prompt tokens (vLLM's step budget) through the NER
    # adapter take ~75 s on a 2-core AVX2 EPYC, ten times the base model's (`python -m bench.cpu_lora`: 6,038 tokens in
    # 225 s against 21 s, README), and CI once waited longer than 60 s for the abandoned batch's step; the service's
    # CPU budget of 512 (serving.engine.CPU_STEP_TOKENS) makes that ~20 s, and an operator may set another. So the first
    # one-token request may wait for that step; once it is answered, the aborts have been taken, and the engine must be
    # idle within 60 s: the abandoned work, many more such steps, would keep it busy for many minutes.
    first = httpx.post(f"{server.url}/generate", headers=server.headers, json=ONE_TOKEN, timeout=STEP_TIMEOUT_S)
    assert first.status_code == 200, first.text
    deadline = time.monotonic() + 60
    # vLLM refreshes its gauges only at an engine step: once the aborts leave it idle they keep their last value
    # (requests waiting for their grammar, say). A one-token request makes a step.
    while engine_requests(server, "running") + engine_requests(server, "waiting") > 0:
        assert time.monotonic() < deadline, f"the engine kept working on the abandoned {path}"
        time.sleep(0.5)
        httpx.post(f"{server.url}/generate", headers=server.headers, json=ONE_TOKEN, timeout=60)


def test_an_abandoned_v1_completion_leaves_no_engine_work(server: ServiceUnderTest) -> None:
    """vLLM's handler aborts by itself: 1,500 tokens of greedy output would take minutes here."""
    body = {"model": "SmolLM2-135M-Instruct", "prompt": LONG_TEXT, "max_tokens": 1500, "ignore_eos": True}
    assert leave_during_engine_work(server, "/v1/completions", body, 0.5), "answered before the engine worked on it"
    assert_engine_goes_idle(server, "/v1/completions")
