"""Event-loop time per /v1 request of BentoML's request-metrics middleware, and what `serving.traffic_metrics` saves
of it, in process: the stand-in for vLLM's app of `bench.asgi_layers` alone, behind BentoML's
`RunnerTrafficMetricsMiddleware` and behind `TrafficMetricsMiddleware` (the same series, each looked up once),
interleaved over --reps rounds of --requests requests, CONCURRENCY at a time, in thread CPU time. Prometheus runs in
multiprocess mode, as in `bentoml serve`'s worker (every update written to a memory-mapped file).
Printed: the median and quartiles of the per-round differences, BentoML's layer against none and ours against
BentoML's.

    python -m bench.metrics_lookup [--requests 256] [--concurrency 64] [--reps 41]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

ENDPOINT = "/v1/completions"


async def differences(requests: int, concurrency: int, reps: int) -> dict[str, list[float]]:
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    from bench.asgi_layers import interleaved_differences, stand_in
    from serving.traffic_metrics import TrafficMetricsMiddleware

    server_context.service_name = server_context.bento_name = "llm-extraction"
    inner = stand_in(1)
    skip = ["/health", "/readyz"]
    theirs = RunnerTrafficMetricsMiddleware(inner, namespace="bentoml_service", skip_paths=skip)
    ours = TrafficMetricsMiddleware(inner, namespace="bentoml_service_ours", skip_paths=skip)
    return {
        "BentoML's metrics middleware against none": await interleaved_differences(
            inner, theirs, requests, concurrency, reps
        ),
        "TrafficMetricsMiddleware against BentoML's": await interleaved_differences(
            theirs, ours, requests, concurrency, reps
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.metrics_lookup", description=__doc__)
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--reps", type=int, default=41)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prometheus-") as multiproc_dir:
        # prometheus_client picks its value class at import: the directory must be set before.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
        import uvloop

        results = uvloop.run(differences(args.requests, args.concurrency, args.reps))
    for what, diffs in results.items():
        q1, median, q3 = statistics.quantiles(diffs, n=4)
        print(f"{what}: {median:+.1f} us per request [{q1:.1f}, {q3:.1f}], {len(diffs)} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
