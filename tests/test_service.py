"""The service over real HTTP: streaming /generate, the OpenAI /v1 API, probes, metrics, API key, errors."""

from __future__ import annotations

import re
import time

import bentoml
import httpx
import openai
import pytest

from tests.conftest import ServiceUnderTest


def metric(server: ServiceUnderTest, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.M)]
    assert values, f"{name} not in /metrics"
    return sum(values)


def test_readiness_and_liveness_need_no_key(server: ServiceUnderTest) -> None:
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.get(f"{server.url}/livez").status_code == 200


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
    assert completion.usage.completion_tokens <= 8
    pieces = [
        c.choices[0].text
        for c in client.completions.create(model=model, prompt="The sky is", max_tokens=8, temperature=0, stream=True)
    ]
    assert "".join(pieces) == completion.choices[0].text


def test_api_key_is_required_everywhere_but_probes(server: ServiceUnderTest) -> None:
    for method, path in [
        ("POST", "/generate"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/metrics"),
    ]:
        response = httpx.request(method, f"{server.url}{path}", json={"prompt": "hi"}, timeout=30)
        assert response.status_code == 401, path
        assert response.json()["error"]["message"].startswith("missing API key")
        wrong = httpx.request(
            method, f"{server.url}{path}", headers={"Authorization": "Bearer wrong"}, json={}, timeout=30
        )
        assert wrong.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong").models.list()


def test_metrics_carry_vllm_and_bentoml_series(server: ServiceUnderTest) -> None:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    for series in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:request_time_per_output_token_seconds_bucket",
    ):
        assert series in text, series
    assert "bentoml_service_request" in text
    # The service's own series: grounding drops (NER) and the result spool (persistence).
    for series in ("ner_dropped_entities_total", "results_spool_pending"):
        assert series in text, series


def test_swagger_lists_every_endpoint_with_examples(server: ServiceUnderTest) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    for path in ("/generate", "/admin/adapters"):
        assert path in spec["paths"], path
    generate = spec["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "examples" in str(generate) or "example" in str(generate) or "$ref" in str(generate)
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 200


def test_openai_app_lifespan_runs_in_the_service(server: ServiceUnderTest) -> None:
    """vLLM's app lifespan runs as under `vllm serve`: it freezes the startup heap out of the garbage
    collector, then logs engine stats every VLLM_LOG_STATS_INTERVAL (10 s) while the engine works."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    model = client.models.list().data[0].id
    deadline = time.monotonic() + 90
    while "Avg prompt throughput" not in server.log():
        assert time.monotonic() < deadline, "no engine stats line in the service log: vLLM's lifespan did not run"
        client.completions.create(model=model, prompt="Count: one, two,", max_tokens=32, temperature=0)


def test_bentoml_tracing_skips_the_openai_api(server: ServiceUnderTest) -> None:
    """A span per streamed chunk costs /v1 throughput, so BentoML traces only the service's own endpoints
    (setting trace_openai_api, off); its access log shows the trace ids of traced requests only."""
    assert httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=10).status_code == 200
    body = {"prompt": "hi", "max_tokens": 2}
    assert httpx.post(f"{server.url}/generate", headers=server.headers, json=body, timeout=60).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        access = [line for line in server.log().splitlines() if "(scheme=http,method=" in line]
        openai_lines = [line for line in access if "path=/v1/" in line]
        generate_lines = [line for line in access if "path=/generate," in line]
        if (openai_lines and generate_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert openai_lines and generate_lines, access[-5:]
    assert all("trace=" not in line for line in openai_lines), openai_lines[-3:]
    assert all("trace=" in line for line in generate_lines), generate_lines[-3:]
