"""Which requests BentoML's OpenTelemetry middleware traces, checked with OpenTelemetry's own URL matching."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.instrumentation import asgi
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.util.http import ExcludeList
from starlette.applications import Starlette

from serving.tracing import bentoml_sample_rate, excluded_urls, leave_out_when_untraced, warn_if_sampled_but_excluded

# OpenTelemetry's class, as imported when pytest collects this module: before any test imports service.py, whose
# default settings put `leave_out_when_untraced`'s stand-in where the class was.
assert isinstance(OpenTelemetryMiddleware, type), "service.py was imported before this module: the class is replaced"

STREAMS = ["http://127.0.0.1:3000/v1/completions", "https://svc.example:443/v1/models", "http://host/generate"]
REQUESTS = [
    "http://127.0.0.1:3000/extract_entities",
    "http://host/viggo",
    "http://host/extract_entities_job/submit",
    "http://host/generate_later",  # not the stream: only /generate itself is
    "http://host/readyz",
    "http://host/",
]


@pytest.mark.parametrize("trace_requests", [False, True])
@pytest.mark.parametrize("trace_streams", [False, True])
def test_each_setting_traces_exactly_its_paths(trace_requests: bool, trace_streams: bool) -> None:
    excluded = ExcludeList(excluded_urls(trace_requests=trace_requests, trace_streams=trace_streams))
    assert [excluded.url_disabled(url) for url in STREAMS] == [not trace_streams] * len(STREAMS)
    assert [excluded.url_disabled(url) for url in REQUESTS] == [not trace_requests] * len(REQUESTS)


def test_a_sampling_bentoml_with_requests_left_out_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="serving.tracing"):
        warn_if_sampled_but_excluded(0.5, trace_requests=False, trace_streams=True)
    assert "TRACE_REQUESTS=true" in caplog.text and "0.5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.tracing"):
        warn_if_sampled_but_excluded(None, trace_requests=False, trace_streams=False)  # BentoML's default
        warn_if_sampled_but_excluded(0.0, trace_requests=False, trace_streams=False)
        warn_if_sampled_but_excluded(1.0, trace_requests=True, trace_streams=True)
    assert caplog.text == ""


def test_bentomls_default_configuration_samples_nothing() -> None:
    # Why the default leaves every request out: BentoML records no span unless a sample rate is set.
    assert not bentoml_sample_rate()


def build_as_bentoml(app: Starlette) -> object:
    """What BentoML's app factory builds around `app`: the class it imports from OpenTelemetry, its options."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as Imported

    excluded = ExcludeList(excluded_urls(trace_requests=False, trace_streams=False))
    return Imported(app, excluded_urls=excluded, default_span_details=None, server_request_hook=None)


@pytest.mark.parametrize(("trace_requests", "trace_streams"), [(True, False), (False, True), (True, True)])
def test_the_tracing_middleware_stays_where_a_setting_traces(
    monkeypatch: pytest.MonkeyPatch, trace_requests: bool, trace_streams: bool
) -> None:
    monkeypatch.setattr(asgi, "OpenTelemetryMiddleware", OpenTelemetryMiddleware)  # restored after the test
    leave_out_when_untraced(trace_requests=trace_requests, trace_streams=trace_streams)
    assert isinstance(build_as_bentoml(Starlette()), OpenTelemetryMiddleware)


def test_the_tracing_middleware_is_left_out_where_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi, "OpenTelemetryMiddleware", OpenTelemetryMiddleware)
    app = Starlette()
    leave_out_when_untraced(trace_requests=False, trace_streams=False)
    assert build_as_bentoml(app) is app
