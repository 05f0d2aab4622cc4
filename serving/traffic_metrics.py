"""BentoML's request metrics, with each label set's series looked up once instead of on every request.

BentoML's `RunnerTrafficMetricsMiddleware` asks prometheus_client for a series by its label values four times a
request (`.labels(...)`: keyword arguments checked, a tuple built, a lock taken, a dict searched), and wraps every
`receive` of an HTTP request in a coroutine that only acts on WebSocket messages. That was +56 us of event-loop time
per /v1 request on a 2-core AVX2 EPYC, which a burst of 64 new requests pays 64 times over before the last one
reaches the engine; this class takes 30 us of it off (`python -m bench.layer_ab metrics`: medians of 41 interleaved
rounds, bench/results/cpu-layer-ab/). The rest is prometheus_client's own updates, six memory-mapped writes a request
in the worker's multiprocess mode.

`TrafficMetricsMiddleware` records the same series (BentoML creates them: same names, labels, buckets, the same
multiprocess files) with the series of each endpoint and status kept once found. WebSockets and /metrics go through
BentoML's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from timeit import default_timer
from typing import Any

from bentoml._internal.context import server_context
from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
from starlette.types import Message, Receive, Scope, Send

# Paths are client input: a scanner's random 404s must not grow these caches without end. Beyond this many the
# series are looked up per request, as BentoML does (prometheus_client keeps every one it was asked for anyway).
MAX_CACHED_PATHS = 1024


@dataclass(frozen=True, slots=True)
class PathSeries:
    """The series a request to one path touches before it knows its status."""

    in_progress: Any  # a Gauge's series
    last_request: Any | None  # a Gauge's series; None on the paths BentoML leaves out of it (health, metrics)


class TrafficMetricsMiddleware(RunnerTrafficMetricsMiddleware):
    """BentoML's request metrics at a lookup per path and per (path, status) instead of four per request."""

    def _setup(self, *args: Any, **kwargs: Any) -> None:  # BentoML's makes the series (its arguments injected)
        super()._setup(*args, **kwargs)
        self._labels = {
            "service_name": server_context.bento_name,
            "service_version": server_context.bento_version,
            "runner_name": server_context.service_name,
        }
        self._skip_prefixes = tuple(self.skip_paths)
        self._paths: dict[str, PathSeries] = {}
        self._finished: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _path_series(self, path: str) -> PathSeries:
        if (found := self._paths.get(path)) is not None:
            return found
        series = PathSeries(
            in_progress=self.metrics_request_in_progress.labels(endpoint=path, **self._labels),
            last_request=None
            if path.startswith(self._skip_prefixes)
            else self.metrics_last_request_timestamp.labels(**self._labels),
        )
        if len(self._paths) < MAX_CACHED_PATHS:
            self._paths[path] = series
        return series

    def _finished_series(self, path: str, status: int) -> tuple[Any, Any]:
        """The request counter's and the duration histogram's series for this path and status."""
        if (found := self._finished.get((path, status))) is not None:
            return found
        labels = {"endpoint": path, "http_response_code": status, **self._labels}
        series = self.metrics_request_total.labels(**labels), self.metrics_request_duration.labels(**labels)
        if len(self._finished) < MAX_CACHED_PATHS:
            self._finished[(path, status)] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_setup:
            self._setup()
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await super().__call__(scope, receive, send)
            return
        path: str = scope["path"]
        series = self._path_series(path)
        if series.last_request is not None:
            series.last_request.set_to_current_time()
        started = default_timer()
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message.get("more_body", False):  # a streamed chunk: most of the messages
                await send(message)
                return
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                total, duration = self._finished_series(path, status)
                total.inc()
                duration.observe(max(default_timer() - started, 0))
            await send(message)

        with series.in_progress.track_inprogress():
            await self.app(scope, receive, recording_send)


def install() -> None:
    """Make BentoML's app factory use `TrafficMetricsMiddleware` (it imports the class when it builds the stack)."""
    from bentoml._internal.server.http import instruments

    instruments.RunnerTrafficMetricsMiddleware = TrafficMetricsMiddleware  # type: ignore[misc]
