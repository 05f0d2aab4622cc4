"""Admission at the front door: a bound on requests in flight, and the drain's closed door.

Every request but health checks, metrics and the docs passes `AdmissionMiddleware`. Beyond
`max_concurrency` requests in flight it answers at once 429 with `Retry-After` (a fast refusal that a
client or a load balancer retries elsewhere, instead of a queue that grows until requests time out); once
the replica drains, 503 with `Retry-After`. A request counts as in flight until its response (a stream
too) has ended, which is what the drain waits for.

`Admission` is the state the middleware and the service share: BentoML builds the middleware inside the
worker, the service's shutdown hook drains through the same object (one per worker process).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter

from serving.errors import OverloadedError, ServiceError, UnavailableError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# Probes and scrapes must answer whatever the load, and while draining (readiness says 503 itself).
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/docs", "/docs.json", "/schema.json"})
EXEMPT_PREFIXES = ("/static_content/",)


def exempt(scope: Scope) -> bool:
    """Not an HTTP request the front door governs: health checks, metrics, the docs (and non-HTTP scopes)."""
    return scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or scope["path"].startswith(EXEMPT_PREFIXES)


REJECTED = Counter("admission_rejected", "Requests refused at the front door.", ["reason"])


class Admission:
    """Requests in flight, their bound, and whether the replica still takes new ones."""

    def __init__(self, max_concurrency: int, retry_after_s: float = 1.0) -> None:
        self.max_concurrency = max_concurrency
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def try_enter(self) -> ServiceError | None:
        """Admit one request (None) or say why not."""
        if self.draining:
            REJECTED.labels("draining").inc()
            return UnavailableError(
                "this replica is shutting down; retry, another replica will answer", retry_after_s=self.retry_after_s
            )
        if self.in_flight >= self.max_concurrency:
            REJECTED.labels("overloaded").inc()
            return OverloadedError(
                f"{self.in_flight} requests in flight, the limit of this replica (max_concurrency); retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.in_flight += 1
        self._idle.clear()
        return None

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("drain begun: refusing new requests, %d in flight", self.in_flight)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False if some still are after `timeout_s`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if exempt(scope):
            await self.app(scope, receive, send)
            return
        refusal = self.admission.try_enter()
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()
