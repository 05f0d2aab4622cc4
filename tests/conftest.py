"""One real service for the whole test session: `bentoml serve` on a free port with the real vLLM
engine and the default model, results persisted to a real S3-protocol server (moto, standalone).

Starting the engine costs 30-90 s on CPU, so every engine test shares this server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.s3_fixtures")
from bench.servers import free_port, running, service_command
from serving.paths import REPO_ROOT
from tests.s3_fixtures import FAKE_AWS_ENV, MotoServer

pytest_plugins = ["tests.s3_fixtures"]

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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceUnderTest]:
    moto_server.create_bucket(RESULTS_BUCKET)
    work = tmp_path_factory.mktemp("service")
    adapter_root = work / "adapters"
    adapter_root.mkdir()
    port = free_port()
    env = {
        **os.environ,
        **FAKE_AWS_ENV,
        "API_KEY": API_KEY,
        "RESULTS_URI": f"s3://{RESULTS_BUCKET}/runs",
        "S3_ENDPOINT_URL": moto_server.endpoint_url,
        "SPOOL_DIR": str(work / "spool"),
        "ADAPTER_ROOTS": f"{adapter_root},{REPO_ROOT / 'finetune' / 'adapters'}",
        # Small and fixed: the CI machine has 2 cores and 24 GiB.
        "KV_CACHE_MEMORY_BYTES": str(1 << 30),
        "MAX_NUM_SEQS": "32",
    }
    log_path = work / "service.log"
    # In its own process group: its workers and engine processes go down with it.
    with running("bentoml serve", service_command(port), env, log_path, "/readyz", STARTUP_TIMEOUT_S) as url:
        yield ServiceUnderTest(
            url,
            API_KEY,
            RESULTS_BUCKET,
            moto_server,
            adapter_root,
            log_path,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
