"""Swagger UI's heading (the OpenAPI document's `info`) is the service's own, and what the deployment's
dashboard and autoscaler read is on the live service's /metrics."""

from __future__ import annotations

import json
import re
import time
import tomllib

import httpx
import pytest
from packaging.version import Version

from serving.openapi import openapi_document
from serving.openapi_info import TITLE, service_info
from serving.paths import REPO_ROOT
from tests.conftest import ServiceUnderTest

PROJECT_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
V1_ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/models"]


def assert_service_info(info: dict[str, str]) -> None:
    assert info["title"] == TITLE
    assert "BentoML" not in info["title"] and "contact" not in info
    assert "created with BentoML" not in info["description"]
    for route in ["/generate", "/extract_entities", "/viggo", *V1_ROUTES]:
        assert f"`POST {route}`" in info["description"] or f"`GET {route}`" in info["description"], route


def test_document_built_from_the_service_has_its_own_info() -> None:
    import service

    document = openapi_document(service.llm_service.openapi_spec.asdict())
    assert_service_info(document["info"])
    # Served from source there is no Bento: BentoML says "None"; the project's version replaces it.
    assert document["info"]["version"] == PROJECT_VERSION


def test_version_names_the_bento_that_runs() -> None:
    version = service_info({"title": "llm-extraction", "version": "ttqgmvq5ukl2kbdn"})["version"]
    assert version == f"{PROJECT_VERSION}+bento.ttqgmvq5ukl2kbdn"
    assert Version(version).local == "bento.ttqgmvq5ukl2kbdn"
    assert service_info({"version": "None"})["version"] == PROJECT_VERSION


@pytest.mark.engine
def test_live_docs_and_metrics(server: ServiceUnderTest) -> None:
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    assert_service_info(document["info"])
    assert document["info"]["version"] == PROJECT_VERSION
    # The /v1 routes the description documents are served.
    models = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=30)
    assert models.status_code == 200 and models.json()["data"], models.text

    # vLLM's gauges get their first sample at the engine's first step and BentoML's request series at the first
    # request: on a fresh service (this test may run first) one real request of each kind brings them all.
    body = {"prompt": "Hello", "max_tokens": 2, "temperature": 0}
    assert httpx.post(f"{server.url}/generate", json=body, headers=server.headers, timeout=120).status_code == 200
    completion = {"model": models.json()["data"][0]["id"], "prompt": "Hello", "max_tokens": 2}
    completed = httpx.post(f"{server.url}/v1/completions", json=completion, headers=server.headers, timeout=120)
    assert completed.status_code == 200, completed.text
    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"([A-Za-z_:][\w:]*)\{", target["expr"])
    }
    always_there = {name for name in queried if name.startswith(("vllm:", "bentoml_service_"))}
    always_there.add("results_spool_pending")
    assert len(always_there) >= 10
    # What hpa.yaml scales on.
    always_there |= {"bentoml_service_request_in_progress", "vllm:num_requests_waiting"}
    deadline = time.monotonic() + 30
    while True:
        metrics = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=30).text
        exported = set(re.findall(r"^([A-Za-z_:][\w:]*)(?:\{| )", metrics, flags=re.MULTILINE))
        if always_there <= exported or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert always_there <= exported, always_there - exported
