"""A `bentoml serve` of this service started by a lifecycle test, which signals, kills and inspects it itself.

Unlike bench.servers.running, it hands the test the process: the tests send it SIGTERM and watch it exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.servers import free_port, log_tail, service_command
from serving.paths import REPO_ROOT

STARTUP_TIMEOUT_S = 600
# Small and fixed: the CI machine has 2 cores and 24 GiB.
SMALL_ENGINE = {"KV_CACHE_MEMORY_BYTES": str(256 << 20), "MAX_NUM_SEQS": "16"}


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    # Every process the replica ever had, so that none escapes the clean-up.
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """The serve process's living descendants: circus' worker, vLLM's engine core and its workers."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for process in found:
            self.seen.setdefault(process.pid, process)
        return found

    def engine_core(self) -> psutil.Process:
        for process in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "EngineCore" in process.name() or "EngineCore" in " ".join(process.cmdline()):
                    return process
        raise AssertionError(f"no engine core process among {self.descendants()}")

    def still_running(self) -> list[psutil.Process]:
        """Processes of this replica, seen at any time, that still run (zombies have ended)."""
        running = []
        for process in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
        return running

    def kill_all(self) -> None:
        """What a container runtime does once PID 1 has exited: kill every process left."""
        self.descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for process in self.still_running():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def start_serve(env: dict[str, str], log_path: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> Serve:
    """Start `bentoml serve` in its own session with `env` added to this one's; return once /readyz says 200."""
    serve = launch(env, log_path)
    started = time.monotonic()
    while not _ready(serve.url):
        if serve.proc.poll() is not None:
            serve.kill_all()
            raise RuntimeError(f"bentoml serve exited with {serve.proc.returncode}:\n{log_tail(log_path)}")
        if time.monotonic() - started > timeout_s:
            serve.kill_all()
            raise RuntimeError(f"bentoml serve not ready within {timeout_s}s:\n{log_tail(log_path)}")
        serve.descendants()
        time.sleep(1)
    serve.descendants()
    return serve


def launch(env: dict[str, str], log_path: Path, port: int | None = None) -> Serve:
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            service_command(port),
            cwd=REPO_ROOT,
            # Its own BENTOML_HOME: every `bentoml serve` wipes its home's Prometheus folder at start, which
            # would empty the shared test service's /metrics (vLLM's series live there too).
            env={**os.environ, **SMALL_ENGINE, "BENTOML_HOME": str(log_path.parent / "bentoml-home"), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Serve(proc, f"http://127.0.0.1:{port}", log_path)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
