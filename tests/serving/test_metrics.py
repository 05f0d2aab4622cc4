"""/metrics merge with real prometheus_client registries: the engine's series (this process's default
registry, where vLLM records) join BentoML's exposition once, never twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import with_engine_series


@pytest.fixture
def engine_series() -> Iterator[tuple[str, str]]:
    """Two series in the default registry, named like vLLM's, removed afterwards."""
    names = f"vllm:test_running_{uuid.uuid4().hex[:8]}", f"vllm:test_ttft_seconds_{uuid.uuid4().hex[:8]}"
    running = Gauge(names[0], "Requests running.", ["model_name"], registry=REGISTRY)
    running.labels(model_name="m").set(3)
    ttft = Histogram(names[1], "Time to first token.", registry=REGISTRY)
    ttft.observe(0.25)
    yield names
    REGISTRY.unregister(running)
    REGISTRY.unregister(ttft)


def bentoml_exposition() -> str:
    registry = CollectorRegistry()
    requests = Counter("bentoml_service_request", "Requests.", ["endpoint"], registry=registry)
    requests.labels(endpoint="/generate").inc(2)
    return generate_latest(registry).decode()


def families(text: str) -> list[str]:
    return [family.name for family in text_string_to_metric_families(text)]


def test_engine_series_are_appended_to_bentomls(engine_series: tuple[str, str]) -> None:
    running, ttft = engine_series
    theirs = bentoml_exposition()
    merged = with_engine_series(theirs)
    assert merged.startswith(theirs)
    names = families(merged)
    assert len(names) == len(set(names)), "a family is exported twice"
    assert {"bentoml_service_request", running, ttft} <= set(names)
    samples = {s.name: s.value for f in text_string_to_metric_families(merged) for s in f.samples}
    assert samples[running] == 3 and samples[f"{ttft}_count"] == 1 and samples["bentoml_service_request_total"] == 2


def test_series_bentoml_already_exports_are_not_repeated(engine_series: tuple[str, str]) -> None:
    # BentoML's collector may already see this process's registry: then nothing is added.
    everything = generate_latest(REGISTRY).decode()
    assert with_engine_series(everything) == everything
    # Only one of the engine's series is already there: the other is added, the first not repeated.
    running, ttft = engine_series
    partial = bentoml_exposition() + "".join(line + "\n" for line in everything.splitlines() if running in line)
    names = families(with_engine_series(partial))
    assert names.count(running) == 1 and names.count(ttft) == 1


# A process as `bentoml serve` makes its worker: PROMETHEUS_MULTIPROC_DIR set before prometheus_client's import.
IN_A_WORKER = """
import json
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from serving.metrics import keep_engine_series_in_memory, with_engine_series

keep_engine_series_in_memory()
keep_engine_series_in_memory()  # twice: still one dispatch, not one wrapped in another
requests = Counter("bentoml_service_request", "Requests.", ["endpoint"])
requests.labels(endpoint="/v1/completions").inc(2)
itl = Histogram("vllm:inter_token_latency_seconds", "ITL.", ["model_name"], buckets=[0.01, 0.1])
itl.labels(model_name="m").observe(0.05)  # a child created on first use, as vLLM's labelled series are
itl.labels(model_name="m").observe(0.5)
bentoml = CollectorRegistry()
multiprocess.MultiProcessCollector(bentoml)  # what BentoML's /metrics reads: the files
theirs = generate_latest(bentoml).decode()
print(json.dumps({
    "engine_value": type(itl.labels(model_name="m")._sum).__name__,
    "bentoml_value": type(requests.labels(endpoint="/v1/completions")._value).__name__,
    "files": theirs,
    "merged": with_engine_series(theirs),
}))
"""


def test_in_a_multiprocess_worker_the_engine_series_live_in_memory_and_still_reach_metrics(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", IN_A_WORKER], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["engine_value"] == "MutexValue"  # no file behind vLLM's updates
    assert out["bentoml_value"] == "MmapedValue"  # BentoML's keep theirs, for its collector
    assert "bentoml_service_request_total" in out["files"] and "vllm:" not in out["files"]
    merged = out["merged"]
    assert families(merged).count("vllm:inter_token_latency_seconds") == 1
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(merged) for s in f.samples}
    assert samples[("vllm:inter_token_latency_seconds_count", None)] == 2
    assert samples[("vllm:inter_token_latency_seconds_bucket", "0.1")] == 1
    assert samples[("bentoml_service_request_total", None)] == 2


def test_outside_multiprocess_mode_nothing_changes() -> None:
    code = "from prometheus_client import values\nfrom serving.metrics import keep_engine_series_in_memory\n" \
           "keep_engine_series_in_memory()\nprint(values.ValueClass is values.MutexValue)"  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr[-3000:]
