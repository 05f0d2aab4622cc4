"""Event-loop time per /v1 request of BentoML's OpenTelemetry middleware when it excludes every URL (the service's
default settings), in process: the stand-in for vLLM's app of `bench.asgi_layers` alone against the same behind the
middleware, built as BentoML builds it, interleaved over --reps rounds of --requests requests, CONCURRENCY at a time.
Printed: the median and quartiles of the per-round differences (thread CPU time, so that the machine's other work
counts less), what `serving.tracing.leave_out_when_untraced` saves each request.

    python -m bench.otel_passthrough [--requests 256] [--concurrency 64] [--reps 41]
"""

from __future__ import annotations

import argparse
import statistics

from bench.asgi_layers import interleaved_differences, stand_in


async def differences(requests: int, concurrency: int, reps: int) -> list[float]:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import ExcludeList

    from serving.tracing import excluded_urls

    inner = stand_in(1)
    excluded = ExcludeList(excluded_urls(trace_requests=False, trace_streams=False))
    traced = OpenTelemetryMiddleware(
        inner, excluded_urls=excluded, default_span_details=None, tracer_provider=BentoMLContainer.tracer_provider.get()
    )
    return await interleaved_differences(inner, traced, requests, concurrency, reps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.otel_passthrough", description=__doc__)
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--reps", type=int, default=41)
    args = p.parse_args(argv)
    import uvloop

    diffs = uvloop.run(differences(args.requests, args.concurrency, args.reps))
    q1, median, q3 = statistics.quantiles(diffs, n=4)
    print(
        f"OpenTelemetry middleware, every URL excluded: {median:+.1f} us per request [{q1:.1f}, {q3:.1f}], "
        f"{len(diffs)} rounds"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
