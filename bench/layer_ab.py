"""Event-loop time per /v1 request of one of BentoML's layers, and of the service's stand-in for it, in process.

The stand-in for vLLM's app of `bench.asgi_layers` (parses the body, streams --chunks chunks) is timed alone, behind
BentoML's layer as BentoML builds it, and behind the service's replacement, interleaved over --reps rounds of
--requests requests, CONCURRENCY at a time, in thread CPU time (so that the machine's other work counts less). Each
line printed is one A/B: the median and quartiles of its per-round differences per request.

    python -m bench.layer_ab otel|metrics|access-log [--chunks 16] [--requests 256] [--concurrency 64] [--reps 41]

otel: BentoML's OpenTelemetry middleware with every URL excluded (the service's default settings), against none: what
    `serving.tracing.leave_out_when_untraced` saves.
metrics: BentoML's request-metrics middleware against none, then `serving.traffic_metrics`' against BentoML's;
    Prometheus in multiprocess mode as in `bentoml serve`'s worker (every update a memory-mapped write).
access-log: BentoML's access log against none, then `serving.access_log`'s against BentoML's; logging configured as
    BentoML configures its server's, the lines written to a file (--log-file, default a temporary one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from starlette.types import ASGIApp

Comparisons = list[tuple[str, ASGIApp, ASGIApp]]  # (what, A, B): B's time less A's


def otel(inner: ASGIApp) -> Comparisons:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import ExcludeList

    from serving.tracing import excluded_urls

    excluded = ExcludeList(excluded_urls(trace_requests=False, trace_streams=False))
    traced = OpenTelemetryMiddleware(
        inner, excluded_urls=excluded, default_span_details=None, tracer_provider=BentoMLContainer.tracer_provider.get()
    )
    return [("OpenTelemetry middleware, every URL excluded", inner, traced)]


def metrics(inner: ASGIApp) -> Comparisons:
    from bentoml._internal.context import server_context

    from serving.traffic_metrics import TrafficMetricsMiddleware

    server_context.service_name = server_context.bento_name = "llm-extraction"
    skip = ["/health", "/readyz"]
    theirs = TrafficMetricsMiddleware.__bases__[0](inner, namespace="bentoml_service", skip_paths=skip)
    ours = TrafficMetricsMiddleware(inner, namespace="bentoml_service_ours", skip_paths=skip)
    return [
        ("BentoML's metrics middleware against none", inner, theirs),
        ("TrafficMetricsMiddleware against BentoML's", theirs, ours),
    ]


def access_log(inner: ASGIApp) -> Comparisons:
    from bentoml._internal.log import configure_server_logging

    from serving.access_log import AccessLogMiddleware

    configure_server_logging()  # its handler writes to sys.stdout: `main` points that at the log file meanwhile
    skip = ["/health", "/readyz"]
    theirs = AccessLogMiddleware.__bases__[0](inner, skip_paths=skip)
    ours = AccessLogMiddleware(inner, skip_paths=skip)
    return [
        ("BentoML's access log against none", inner, theirs),
        ("AccessLogMiddleware against BentoML's", theirs, ours),
    ]


SUBJECTS: dict[str, Callable[[ASGIApp], Comparisons]] = {"otel": otel, "metrics": metrics, "access-log": access_log}


async def differences(subject: str, chunks: int, requests: int, concurrency: int, reps: int) -> dict[str, list[float]]:
    from bench.asgi_layers import interleaved_differences, stand_in

    out = {}
    for what, base, variant in SUBJECTS[subject](stand_in(chunks)):
        out[what] = await interleaved_differences(base, variant, requests, concurrency, reps)
    return out


@contextlib.contextmanager
def stdout_to(path: Path) -> Iterator[None]:
    with path.open("a") as log:
        saved, sys.stdout = sys.stdout, log
        try:
            yield
        finally:
            sys.stdout = saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.layer_ab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("subject", choices=sorted(SUBJECTS))
    p.add_argument("--chunks", type=int, default=16, help="SSE chunks per response")
    p.add_argument("--requests", type=int, default=256, help="requests per round and side")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--reps", type=int, default=41, help="rounds")
    p.add_argument("--log-file", type=Path, help="where access-log lines go (default: a temporary file)")
    args = p.parse_args(argv)
    if min(args.chunks, args.requests, args.concurrency, args.reps) < 1:
        p.error("--chunks, --requests, --concurrency and --reps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="layer-ab-") as scratch:
        # prometheus_client picks its value class at import: the directory must be set before.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", scratch)
        import uvloop

        with stdout_to(args.log_file or Path(scratch) / "access.log"):
            results = uvloop.run(differences(args.subject, args.chunks, args.requests, args.concurrency, args.reps))
    for what, diffs in results.items():
        q1, median, q3 = statistics.quantiles(diffs, n=4)
        print(f"{what}: {median:+.1f} us per request [{q1:.1f}, {q3:.1f}], {len(diffs)} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
