"""Prometheus: vLLM's engine series (`vllm:` prefix) next to BentoML's own on /metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest


def with_engine_series(bentoml_text: str) -> str:
    """BentoML exposes its multiprocess registry; vLLM records into this process's default one.

    Series already present (same name) are not repeated, so a setup where BentoML's collector
    already sees vLLM's series does not export them twice.
    """
    ours = generate_latest(REGISTRY).decode()
    present = {line.split(" ", 3)[2] for line in bentoml_text.splitlines() if line.startswith("# TYPE ")}
    families: list[str] = []
    keep = False
    for line in ours.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            keep = name not in present
        if keep:
            families.append(line)
    if not families:
        return bentoml_text
    return bentoml_text.rstrip("\n") + "\n" + "\n".join(families) + "\n"
