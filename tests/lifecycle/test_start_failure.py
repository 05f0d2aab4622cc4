"""A service that cannot start ends `bentoml serve` with one clear error and a non-zero exit, not a restart loop."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from serving.lifecycle import STARTUP_FAILED_EXIT, UNCAUGHT_EXCEPTION_EXIT
from tests.lifecycle.serve import Serve, launch

# Importing BentoML, vLLM and torch takes most of it on CI's 2 cores; the model lookup itself fails at once.
EXIT_WITHIN_S = 300


def ended(serve: Serve) -> tuple[int, str]:
    """The exit status of a `bentoml serve` that must end by itself, and its log; nothing of it may outlive it."""
    try:
        exit_code = serve.proc.wait(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bentoml serve still running {EXIT_WITHIN_S} s after a start that cannot succeed")
    assert serve.still_running() == []
    return exit_code, serve.log()


def test_a_model_that_cannot_be_found_ends_bentoml_serve(tmp_path: Path) -> None:
    # A Hub model that is not in the local cache, with the Hub out of reach (offline mode, as in CI).
    serve = launch({"MODEL": "meta-llama/Llama-3.1-8B-Instruct", "HF_HUB_OFFLINE": "1"}, tmp_path / "serve.log")
    try:
        exit_code, log = ended(serve)
        assert exit_code == STARTUP_FAILED_EXIT, log[-3000:]
        # The worker was started once, not restarted.
        assert log.count("Initializing service error") == 1, log[-3000:]
        assert "ModelNotFoundError: model 'meta-llama/Llama-3.1-8B-Instruct' is not in the Hugging Face cache" in log
        assert "the service could not start (its error is logged above)" in log
    finally:
        serve.kill_all()


def test_a_port_in_use_ends_bentoml_serve_with_a_failure_status(tmp_path: Path) -> None:
    """circus cannot bind the port: `bentoml serve` exits at once with status 1, and its last line says so (it
    said "exits (status 0)" while the process exited with 1)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        serve = launch({}, tmp_path / "serve.log", port=taken.getsockname()[1])
        try:
            exit_code, log = ended(serve)
            assert exit_code == UNCAUGHT_EXCEPTION_EXIT, log[-3000:]
            assert "Address already in use" in log and "bentoml serve exits (status 1)" in log, log[-3000:]
        finally:
            serve.kill_all()
