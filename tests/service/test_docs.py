"""Swagger UI: the page renders every endpoint in a real browser, and every endpoint's example works."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServiceUnderTest

ENDPOINTS = [
    "/generate",
    "/extract_entities",
    "/extract_entities_batch",
    "/viggo",
    "/admin/adapters",
    "/admin/adapters/list",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these, Chromium keeps trying to reach Google's hosts, which this network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def example_of(prop: dict[str, Any]) -> Any:
    """A property's example as OpenAPI 3.0 writes it (`example`), or JSON Schema's `examples` list."""
    return prop["example"] if "example" in prop else prop["examples"][0]


def has_example(prop: dict[str, Any]) -> bool:
    return "example" in prop or "examples" in prop


def example_body(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The request body Swagger UI pre-fills from the schema's examples."""
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body = {}
    for name, prop in schema.get("properties", {}).items():
        if has_example(prop):
            body[name] = example_of(prop)
        elif "$ref" in prop:  # a nested model: take its fields' examples
            nested = spec["components"]["schemas"][prop["$ref"].rsplit("/", 1)[-1]]["properties"]
            body[name] = {k: example_of(v) for k, v in nested.items() if has_example(v)}
    return body


def test_every_endpoint_has_a_working_example(server: ServiceUnderTest) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    assert set(ENDPOINTS) <= set(spec["paths"])
    for path in ENDPOINTS:
        body = example_body(spec, path)
        if path == "/admin/adapters":
            body = {"adapter": {"name": "viggo", "source": "finetune/adapters/viggo-smollm2"}}
            assert example_body(spec, path)["adapter"] == body["adapter"]
        response = httpx.post(f"{server.url}{path}", headers=server.headers, json=body, timeout=120)
        assert response.status_code == 200, (path, body, response.text)
        if path == "/generate":  # the example must produce text, not just an empty 200 stream
            assert response.text.strip(), body


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium); CI installs it")
def test_swagger_ui_renders_every_endpoint_in_a_browser(server: ServiceUnderTest, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run([*command, "--dump-dom", f"{server.url}/"], capture_output=True, text=True, timeout=120).stdout
    assert "swagger-ui" in dom
    for path in ENDPOINTS:
        assert f'data-path="{path}"' in dom, f"{path} is not on the Swagger page"
    screenshot = tmp_path / "swagger.png"
    subprocess.run(
        [*command, "--window-size=1280,2000", f"--screenshot={screenshot}", f"{server.url}/"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000
