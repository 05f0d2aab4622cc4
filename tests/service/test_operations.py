"""What operators rely on, over real HTTP: probes without a key, the API key everywhere else, /metrics, Swagger."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from tests.conftest import ServiceUnderTest


def test_readiness_and_liveness_need_no_key(server: ServiceUnderTest) -> None:
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.get(f"{server.url}/livez").status_code == 200


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
    # BentoML's request series, recorded by serving/traffic_metrics.py: this very request's path among them.
    models = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=10)
    assert models.status_code == 200
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    for name in ("request_total", "request_duration_seconds_count", "request_in_progress"):
        assert re.search(rf'^bentoml_service_{name}\{{[^}}]*endpoint="/v1/models"', text, re.M), name
    assert re.search(r"^bentoml_service_last_request_timestamp_seconds\{[^}]*\} [1-9]", text, re.M)
    # The service's own series: grounding drops (NER) and the result spool (persistence).
    for series in ("ner_dropped_entities_total", "results_spool_pending"):
        assert series in text, series


def test_the_workers_engine_series_are_in_memory_and_bentomls_in_its_files(server: ServiceUnderTest) -> None:
    # `bentoml serve` runs its worker in prometheus_client's multiprocess mode; vLLM's per-token updates must not be
    # file writes on the event loop (serving/metrics.py), while BentoML's own series must stay where its collector
    # reads them.
    answer = httpx.post(f"{server.url}/generate", headers=server.headers, json={"prompt": "Hi", "max_tokens": 4},
                        timeout=120)  # fmt: skip
    assert answer.status_code == 200, answer.text
    worker = psutil.Process(server.worker_pid())
    files = Path(worker.environ()["PROMETHEUS_MULTIPROC_DIR"]).glob(f"*_{worker.pid}.db")
    written = b"".join(path.read_bytes() for path in files)
    assert b"bentoml_service_request" in written
    assert b"vllm:" not in written


def test_swagger_lists_every_endpoint_with_examples(server: ServiceUnderTest) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    for path in ("/generate", "/admin/adapters"):
        assert path in spec["paths"], path
    generate = spec["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "examples" in str(generate) or "example" in str(generate) or "$ref" in str(generate)
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
