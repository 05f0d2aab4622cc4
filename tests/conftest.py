"""One real service for the whole test session: `bentoml serve` on a free port with the real vLLM
engine and the default model, results persisted to a real S3-protocol server (moto, standalone).

Starting the engine costs 30-90 s on CPU, so every engine test shares this server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.s3_fixtures")
from tests.s3_fixtures import FAKE_AWS_ENV, MotoServer, _free_port

pytest_plugins = ["tests.s3_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
BENTOML = Path(sys.executable).parent / "bentoml"
API_KEY = "test-key-not-secret"
RESULTS_BUCKET = "service-results"
STARTUP_TIMEOUT_S = 600


@dataclass
class ServiceUnderTest:
    url: str
    api_key: str
    results_bucket: str
    moto: MotoServer
    adapter_root: Path
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def server(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceUnderTest]:
    moto_server.create_bucket(RESULTS_BUCKET)
    work = tmp_path_factory.mktemp("service")
    adapter_root = work / "adapters"
    adapter_root.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **FAKE_AWS_ENV,
        "API_KEY": API_KEY,
        "RESULTS_URI": f"s3://{RESULTS_BUCKET}/runs",
        "S3_ENDPOINT_URL": moto_server.endpoint_url,
        "SPOOL_DIR": str(work / "spool"),
        "ADAPTER_ROOTS": f"{adapter_root},{ROOT / 'finetune' / 'adapters'}",
        # Small and fixed: the CI machine has 2 cores and 24 GiB.
        "KV_CACHE_MEMORY_BYTES": str(1 << 30),
        "MAX_NUM_SEQS": "32",
    }
    log_path = work / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers and engine processes go down with the group
        )
    sut = ServiceUnderTest(url, API_KEY, RESULTS_BUCKET, moto_server, adapter_root, log_path,
                           headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited with {process.returncode}:\n{sut.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready within {STARTUP_TIMEOUT_S}s:\n{sut.log_tail()}")
            time.sleep(2)
        yield sut
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
