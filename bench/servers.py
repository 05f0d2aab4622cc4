"""Start raw `vllm serve` and this service with the same engine flags, one at a time, on 127.0.0.1.

`running` also starts the test session's service (tests/conftest.py); `started` starts either from any checkout and
hands back its process (bench/frontend_cpu.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from serving.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def raw_command(cli_args: list[str], port: int) -> list[str]:
    """`vllm serve` as the CLI runs it, with the service's flags (serving.engine.vllm_cli_args).

    Through bench.vllm_cli: vLLM's CLI unchanged but for the version lookup the CPU wheel fails.
    """
    return [sys.executable, "-m", "bench.vllm_cli", "serve", *cli_args, "--host", "127.0.0.1", "--port", str(port)]


def service_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", ".", "--host", "127.0.0.1", "--port", str(port)]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int  # the started command's: the leader of its process group


@contextmanager
def started(
    kind: str,
    cmd: list[str],
    env: dict[str, str],
    log_path: Path,
    ready_path: str,
    timeout_s: float = 1200,
    cwd: Path = REPO_ROOT,
) -> Iterator[Server]:
    """Start `cmd` in `cwd` in its own process group, yield it once `ready_path` answers 200, stop it.

    A SIGTERM to this process (a `timeout` around a bench, a stopped CI job) stops it too: Python's default would end
    the process without this `finally`, and the server, in a session of its own, would go on serving (a killed
    `bench.gc_pauses` left a service's arbiter respawning its worker, 2026-12-07).
    """
    port = int(cmd[cmd.index("--port") + 1])
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    begun = time.monotonic()
    on_main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if on_main else None
    try:
        while not _ok(url + ready_path):
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {proc.returncode}:\n{log_tail(log_path)}")
            if time.monotonic() - begun > timeout_s:
                raise RuntimeError(f"{kind} not ready within {timeout_s}s:\n{log_tail(log_path)}")
            time.sleep(1)
        print(f"{kind} ready at {url} after {time.monotonic() - begun:.0f} s", flush=True)
        yield Server(url, proc.pid)
    finally:
        _stop(proc)
        if on_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def running(
    kind: str, cmd: list[str], env: dict[str, str], log_path: Path, ready_path: str, timeout_s: float = 1200
) -> Iterator[str]:
    """`started` from this checkout, yielding the base URL."""
    with started(kind, cmd, env, log_path, ready_path, timeout_s) as server:
        yield server.url


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Engine core processes sit in the same group; give the OS a moment to free memory / GPU.
    time.sleep(3)


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
