"""vLLM's OpenAI API mounted at /v1, through the openai SDK; its lifespan runs; BentoML tracing skips it."""

from __future__ import annotations

import re
import time

import httpx
import openai

from tests.conftest import ServiceUnderTest


def test_openai_sdk_chat_completions_and_streaming(server: ServiceUnderTest) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, temperature=0
    )
    assert reply.choices[0].message.content
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == reply.choices[0].message.content


def test_openai_sdk_completions(server: ServiceUnderTest) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    model = client.models.list().data[0].id
    completion = client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0)
    assert completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens <= 8
    pieces = [
        c.choices[0].text
        for c in client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0, stream=True)
    ]
    assert "".join(pieces) == completion.choices[0].text


def test_openai_app_lifespan_runs_in_the_service(server: ServiceUnderTest) -> None:
    """vLLM's app lifespan runs as under `vllm serve`: it freezes the startup heap out of the garbage
    collector, then logs engine stats every VLLM_LOG_STATS_INTERVAL (10 s) while the engine works."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    model = client.models.list().data[0].id
    deadline = time.monotonic() + 90
    while "Avg prompt throughput" not in server.log():
        assert time.monotonic() < deadline, "no engine stats line in the service log: vLLM's lifespan did not run"
        client.completions.create(model=model, prompt="Count: one, two,", max_tokens=32, temperature=0)


def test_bentoml_tracing_is_off_unless_asked(server: ServiceUnderTest) -> None:
    """BentoML's tracing middleware costs throughput even where nothing is sampled, so by default it traces no
    endpoint (settings trace_requests and trace_streams, off; serving/tracing.py); its access log shows the trace
    ids of traced requests only."""
    assert httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=10).status_code == 200
    body = {"prompt": "hi", "max_tokens": 2}
    assert httpx.post(f"{server.url}/generate", headers=server.headers, json=body, timeout=60).status_code == 200
    listed = httpx.post(f"{server.url}/admin/adapters/list", headers=server.headers, json={}, timeout=60)
    assert listed.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        access = [line for line in server.log().splitlines() if "(scheme=http,method=" in line]
        openai_lines = [line for line in access if "path=/v1/" in line]
        generate_lines = [line for line in access if "path=/generate," in line]
        admin_lines = [line for line in access if "path=/admin/adapters/list," in line]
        if (openai_lines and generate_lines and admin_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert openai_lines and generate_lines and admin_lines, access[-5:]
    # BentoML's line, written by the service's AccessLogMiddleware (serving/access_log.py): client, request, response
    # (with the content types and lengths BentoML's default `logging.access` options add), latency.
    models = next(line for line in openai_lines if "method=GET,path=/v1/models," in line)
    shape = (
        r"\[INFO\] \[[^]]+\] 127\.0\.0\.1:\d+ \(scheme=http,method=GET,path=/v1/models,[^)]*\) "
        r"\(status=200,type=application/json,length=\d+\) \d+\.\d{3}ms$"
    )
    assert re.search(shape, models), models
    untraced = openai_lines + generate_lines + admin_lines
    assert all("trace=" not in line for line in untraced), untraced[-3:]
