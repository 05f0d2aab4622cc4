"""The service's own endpoints take JSON, and every error they answer has the service's one error shape.

BentoML picks how to parse a body from its Content-Type: `multipart/form-data` carrying JSON, for
instance, ends in a 500 on every endpoint. Only `application/json` (or no content type, which BentoML
reads as JSON) is let through; anything else gets a 415 before BentoML parses it.

BentoML answers errors it catches itself in its own shapes: a pydantic validation error (wrong type,
out of range, malformed JSON) as 400 `{"error": "1 validation error for ...", "detail": [...]}`, other
failures as `{"error": ...}` (sometimes in a list). `JsonEndpointsMiddleware` turns those into the
service's error body, with `param` naming the field of the first validation error (`items[0].text`), so
callers and the OpenAPI document see one shape. vLLM's /v1 app answers in OpenAI's shape already.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from serving.errors import RequestError, ServiceError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = b"application/json"
# Headers of BentoML's answer that describe its body: the replacement brings its own.
BODY_HEADERS = frozenset({b"content-length", b"content-type"})


def _media_type(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower()
    return None


def endpoint_routes(apis: Iterable[Any]) -> list[str]:
    """The paths of BentoML endpoints (`Service.apis` values): a task endpoint has five besides its own."""
    routes: list[str] = []
    for api in apis:
        routes.append(api.route)
        if api.is_task:
            routes += [f"{api.route}/{action}" for action in ("submit", "status", "get", "retry", "cancel")]
    return routes


def field_path(loc: Iterable[Any]) -> str | None:
    """pydantic's error location as the request field it names: ("items", 0, "text") -> "items[0].text"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None


def as_service_error(status: int, body: Any) -> ServiceError | None:
    """The `ServiceError` a BentoML error body stands for; None if the body is already ours (or not BentoML's)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]  # BentoML answers its own 4xx exceptions as a one-element list
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    details = body.get("detail")
    if isinstance(details, list) and details and all(isinstance(item, dict) for item in details):
        fields = [field_path(item.get("loc", ())) for item in details]
        told = [
            f"{field}: {item.get('msg')}" if field else str(item.get("msg"))
            for field, item in zip(fields, details, strict=True)
        ]
        message = "; ".join(told)
        return RequestError(message, field=fields[0] or "body", status=status)
    if status < 500:
        return RequestError(body["error"], status=status)
    return ServiceError(body["error"], status=status)


class JsonEndpointsMiddleware:
    def __init__(self, app: ASGIApp, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        media_type = _media_type(scope)
        if media_type not in (None, JSON):
            given = media_type.decode(errors="replace")
            refusal = RequestError(
                f"the body must be JSON sent as 'Content-Type: application/json', not {given!r}", status=415
            )
            await error_response(refusal)(scope, receive, send)
            return

        held: Message | None = None
        chunks: list[bytes] = []

        async def reshape_errors(message: Message) -> None:
            # Error answers are small JSON documents, held until complete; everything else streams through.
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_error(held, b"".join(chunks), scope, receive, send)

        await self.app(scope, receive, reshape_errors)

    @staticmethod
    async def _send_error(start: Message, raw: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            exc = as_service_error(start["status"], json.loads(raw))
        except ValueError:
            exc = None
        if exc is None:
            await send(start)
            await send({"type": "http.response.body", "body": raw, "more_body": False})
            return
        response = error_response(exc)
        response.raw_headers.extend((k, v) for k, v in start.get("headers", []) if k.lower() not in BODY_HEADERS)
        await response(scope, receive, send)
