"""The service's one error model: every error a caller can see is a `ServiceError`.

A `ServiceError` carries the HTTP status, the OpenAI error `type`, the request field at fault (`param`)
and, for refusals that end by themselves (draining, overload), a `Retry-After`. `error_body` is the one
place the wire shape is written (OpenAI's, so the `openai` SDK raises the matching exception and shows our
message), and `error_response` / `answers_errors` the one place errors become HTTP responses: the service's
endpoints through the decorator, the ASGI middlewares (API key, admission, drain) through `error_response`.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from starlette.responses import JSONResponse

P = ParamSpec("P")
R = TypeVar("R")


class ServiceError(Exception):
    """Root of every error answered to a caller. Subclasses fix the status and the OpenAI `type`."""

    status: int = 500
    type: str = "internal_error"

    def __init__(
        self, message: str, *, field: str | None = None, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        self.retry_after_s = retry_after_s

    def with_field_prefix(self, prefix: str) -> ServiceError:
        """The same error about `prefix + field` (a batch item's `items[3].text`), same class and status."""
        clone = copy.copy(self)
        clone.field = f"{prefix}{self.field}" if self.field else prefix.rstrip(".")
        clone.args = (f"{clone.field}: {self.message}",)
        return clone


class RequestError(ServiceError):
    """Bad input: the field named is wrong, and the message says how to fix it."""

    status = 422
    type = "invalid_request_error"


class NotFoundError(RequestError):
    """Something the request names (an adapter, a job) does not exist."""

    status = 404
    type = "not_found_error"


class AuthenticationError(ServiceError):
    status = 401
    type = "authentication_error"


class UpstreamError(ServiceError):
    """A store the service reads from (S3) failed midway: not the caller's input; the same request may succeed."""

    status = 502
    type = "upstream_error"


class UnavailableError(ServiceError):
    """The replica cannot serve this now (starting, draining, engine dead): another replica or a retry can."""

    status = 503
    type = "service_unavailable"


class OverloadedError(UnavailableError):
    """More requests at once than admitted: a fast refusal the caller (or a load balancer) retries."""

    status = 429
    type = "rate_limit_exceeded"


def error_body(message: str, *, type: str, param: str | None, code: int) -> dict[str, Any]:
    """OpenAI's error shape; `param` names the request field at fault, `code` repeats the HTTP status."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_headers(exc: ServiceError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, AuthenticationError):
        headers["www-authenticate"] = "Bearer"
    return headers


def error_response(exc: ServiceError) -> JSONResponse:
    """The HTTP response for `exc`; also an ASGI app, so middlewares answer with `await resp(scope, receive, send)`."""
    body = error_body(exc.message, type=exc.type, param=exc.field, code=exc.status)
    return JSONResponse(body, status_code=exc.status, headers=error_headers(exc))


def answers_errors(endpoint: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn a `ServiceError` raised by a BentoML endpoint into its response (BentoML would answer 500).

    BentoML sends a returned `Response` as is, whatever the endpoint's declared return type, which is why
    the cast is sound. `functools.wraps` keeps the signature BentoML reads the endpoint's schema from.
    """

    @functools.wraps(endpoint)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await endpoint(*args, **kwargs)
        except ServiceError as exc:
            return cast(R, error_response(exc))

    return wrapper
