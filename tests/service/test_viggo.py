"""ViGGO over HTTP against the shared test service (`server` fixture from tests/conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.paths import REPO_ROOT
from viggo.mr import MeaningRepresentation
from viggo.ontology import ACTS


def test_viggo_returns_a_well_formed_mr(server) -> None:
    response = httpx.post(
        f"{server.url}/viggo",
        json={"sentence": "Halo 3 is a great first person shooter for the Xbox."},
        headers=server.headers,
        timeout=300,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    mr = MeaningRepresentation.parse(body["mr"])
    assert mr.to_string() == body["mr"]
    assert body["act"] == mr.act and body["act"] in ACTS
    assert body["attributes"] == mr.attributes


@pytest.mark.parametrize("sentence", ["", "   "])
def test_viggo_rejects_an_empty_sentence(server, sentence: str) -> None:
    response = httpx.post(f"{server.url}/viggo", json={"sentence": sentence}, headers=server.headers, timeout=60)
    assert 400 <= response.status_code < 500
    assert "sentence" in response.text


def test_evaluate_cli_over_http(server, tmp_path: Path) -> None:
    predictions, metrics = tmp_path / "preds.jsonl", tmp_path / "metrics.json"
    command = [sys.executable, "-m", "viggo.evaluate", "--url", server.url, "--limit", "8",
               "--api-key", server.api_key, "--out", str(predictions), "--json-out", str(metrics)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == 8
    assert all(record["error"] is None for record in records), records
    assert all(MeaningRepresentation.parse(record["prediction"]) for record in records)
    scores = json.loads(metrics.read_text())
    assert scores["count"] == 8 and scores["parse_rate"] == 1.0
    for key in ("exact_match", "act_accuracy", "slot_precision", "slot_recall", "slot_f1"):
        assert 0 <= scores[key] <= 1
    assert scores["sentences_per_s"] > 0
    assert "exact match" in result.stdout
