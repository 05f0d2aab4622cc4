"""Which requests BentoML's OpenTelemetry middleware traces (its `tracing.excluded_urls`).

The middleware does its per-request work whether or not anything is recorded: a span for the request and one
for every ASGI message it wraps, context attached and detached, even under BentoML's default `sample_rate` of 0,
where no span is ever exported. At `/extract_entities` concurrency 256 on an H100 that was ~10% of the event loop
(bench/results/h100-tasks.md), and a span per streamed chunk cost `/generate` a third of its throughput
(bench/results/h100-attribution.md). So the service's requests are traced only when asked (`trace_requests`,
`trace_streams`), which one wants together with a BentoML tracing exporter and a non-zero sample rate.

With neither, every request is excluded, and the middleware only lets each one pass: still ~16 us of event-loop
time per request on a 2-core AVX2 EPYC (its URL rebuilt from the headers and matched against the patterns; `python -m
bench.layer_ab otel --chunks 1`), which a burst of 64 new requests pays 64 times over before the last one reaches
the engine. `leave_out_when_untraced` takes it out of the stack then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

# OpenTelemetry searches these patterns in `scheme://host/path` (no query string).
STREAMS = r"^[a-z]+://[^/]*/(v1/|generate$)"  # vLLM's OpenAI API and /generate
REQUESTS = r"^[a-z]+://[^/]*/(?!v1/|generate$)"  # every other path: task endpoints, jobs, admin, health


def excluded_urls(*, trace_requests: bool, trace_streams: bool) -> list[str]:
    """BentoML's `tracing.excluded_urls` for these settings."""
    return [pattern for pattern, traced in ((REQUESTS, trace_requests), (STREAMS, trace_streams)) if not traced]


def warn_if_sampled_but_excluded(sample_rate: float | None, *, trace_requests: bool, trace_streams: bool) -> None:
    """BentoML's tracing is set up to record spans, but this service's settings leave its requests out."""
    if sample_rate and not (trace_requests and trace_streams):
        logger.warning(
            "BentoML tracing samples %s of requests, but trace_requests=%s and trace_streams=%s leave those "
            "requests untraced; set TRACE_REQUESTS=true (task endpoints, jobs) and/or TRACE_STREAMS=true (/v1, "
            "/generate) to trace them",
            sample_rate,
            trace_requests,
            trace_streams,
        )


def bentoml_sample_rate() -> float | None:
    """The sample rate in BentoML's effective configuration (None where it cannot be read)."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        rate = BentoMLContainer.config.tracing.sample_rate.get()
    except Exception:  # a private API: its absence must not stop the service
        return None
    return float(rate) if rate is not None else None


def _no_layer(app: ASGIApp, **_options: object) -> ASGIApp:
    """Where BentoML builds a middleware from the class, the app it would wrap: no layer at all."""
    return app


def leave_out_when_untraced(*, trace_requests: bool, trace_streams: bool) -> None:
    """Leave BentoML's OpenTelemetry middleware out of the stack when these settings trace no request.

    BentoML imports the class when it builds the stack (in the worker, after this module's import), so the name in
    OpenTelemetry's module is what it takes.
    """
    if trace_requests or trace_streams:
        return
    from opentelemetry.instrumentation import asgi

    asgi.OpenTelemetryMiddleware = _no_layer  # type: ignore[misc,assignment]
    logger.debug("BentoML's OpenTelemetry middleware left out: trace_requests and trace_streams are off")
