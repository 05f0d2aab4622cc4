"""/metrics merge with real prometheus_client registries: the engine's series (this process's default
registry, where vLLM records) join BentoML's exposition once, never twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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
