"""The ViGGO evaluation CLI with its own in-process engine (needs the engine, not the shared server)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from serving.paths import REPO_ROOT
from viggo.mr import MeaningRepresentation


@pytest.mark.engine
def test_evaluate_cli_in_process_engine_and_clean_exit(tmp_path: Path) -> None:
    """The README's in-process command: its own engine, a well-formed MR per sentence, and an exit that
    does not print vLLM's `AsyncLLM.__del__` traceback (serving.engine imports vLLM off our stack)."""
    predictions, metrics = tmp_path / "preds.jsonl", tmp_path / "metrics.json"
    command = [sys.executable, "-m", "viggo.evaluate", "--limit", "3", "--kv-cache-gib", "1", "--max-num-seqs", "4",
               "--out", str(predictions), "--json-out", str(metrics)]  # fmt: skip
    # In a session of its own: if it times out, its engine processes go down with it instead of living on.
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == 3 and all(MeaningRepresentation.parse(record["prediction"]) for record in records)
    assert json.loads(metrics.read_text())["parse_rate"] == 1.0
    assert "Exception ignored" not in result.stderr, result.stderr[-2000:]
