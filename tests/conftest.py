"""One real service for the whole test session: `bentoml serve` on a free port with the real vLLM
engine and the default model, results persisted to a real S3-protocol server (moto, standalone).

Starting the engine costs 30-90 s on CPU, so every engine test shares this server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from bench.frontend_cpu import SERVICE_WORKER
from bench.servers import free_port, running, service_command
from serving.default_model import DefaultModelError, ensure_default_model
from serving.paths import DEFAULT_CACHE_DIR, REPO_ROOT, VIGGO_DATA

# Before its import, so that its fixtures' asserts are rewritten too.
pytest.register_assert_rewrite("tests.s3_fixtures")
from tests.s3_fixtures import FAKE_AWS_ENV, MotoServer  # noqa: E402

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

pytest_plugins = ["tests.s3_fixtures"]

API_KEY = "test-key-not-secret"
RESULTS_BUCKET = "service-results"
# The service's adapter_store (tests/service/test_adapters_on_demand.py fills it); its cache has room for two
# copies of the bundled adapter (19.6 MB each at rank 32), not three, so that a third evicts one.
ADAPTER_STORE_BUCKET = "adapter-store"
ADAPTER_CACHE_BYTES = int(
    2.5 * (REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2" / "adapter_model.safetensors").stat().st_size
)
STARTUP_TIMEOUT_S = 600
SERVICE_MAX_CONCURRENCY = 12


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

    def worker_pid(self) -> int:
        """The BentoML worker process that serves it (it holds the listening socket the arbiter made)."""
        port = int(self.url.rsplit(":", 1)[1])
        for proc in psutil.process_iter(["cmdline"]):
            if SERVICE_WORKER in " ".join(proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in proc.net_connections()):
                        return proc.pid
        raise AssertionError(f"no {SERVICE_WORKER} process listens on {port}")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The converted default model: its tokenizer and chat template are the ones the service uses."""
    try:
        return ensure_default_model(DEFAULT_CACHE_DIR)
    except DefaultModelError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tokenizer(default_model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


@pytest.fixture(scope="session")
def viggo_data() -> Path:
    """The ViGGO CSV folder of ../shared/data (train, valid)."""
    if not (VIGGO_DATA / "train.csv").is_file():
        pytest.skip(f"ViGGO data not at {VIGGO_DATA}")
    return VIGGO_DATA


@pytest.fixture(scope="session")
def server(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceUnderTest]:
    moto_server.create_bucket(RESULTS_BUCKET)
    moto_server.create_bucket(ADAPTER_STORE_BUCKET)
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
        "ADAPTER_STORE": f"s3://{ADAPTER_STORE_BUCKET}/adapters",
        "ADAPTER_CACHE_BYTES": str(ADAPTER_CACHE_BYTES),
        # Small and fixed: the CI machine has 2 cores and 24 GiB.
        "KV_CACHE_MEMORY_BYTES": str(1 << 30),
        "MAX_NUM_SEQS": "32",
        # Small enough for tests/service/test_admission.py to fill cheaply; above any other test's concurrency.
        "MAX_CONCURRENCY": str(SERVICE_MAX_CONCURRENCY),
        # Nothing may reach the Hub (schemathesis sends Hub ids to /admin/adapters): fail fast, offline.
        "HF_HUB_OFFLINE": "1",
        # Every `bentoml serve` wipes its home's Prometheus folder at start: services that other tests start
        # (tests/lifecycle) must not empty this one's /metrics, so each has a home of its own.
        "BENTOML_HOME": str(work / "bentoml-home"),
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
