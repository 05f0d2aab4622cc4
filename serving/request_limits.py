"""Bounds on the work one request may demand, checked before any of it starts.

Every request body is read up to `max_request_bytes` (413 beyond it, before the app sees a byte). On
vLLM's OpenAI app (/v1), whose request models we do not own, the JSON body is then checked against the
service's bounds: `n` and `best_of` (vLLM itself allows thousands, each a full generation), the number
of stop strings, and the size of structured-output constraints (a large schema or grammar takes the
engine's compiler a long time). A request within bounds reaches the app with its body replayed as read;
one that is not JSON, or not an object, passes unchecked and vLLM answers it as it would.
The service's own endpoints declare their bounds in their signatures (BentoML validates them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.errors import RequestError, ServiceError, error_response
from serving.openai_app import OPENAI_PREFIX

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from serving.settings import ServiceSettings

# Names of the structured-output constraints on vLLM 0.32 (`response_format`, `structured_outputs`) and
# 0.25 (the `guided_*` fields); `tools` carry JSON schemas that constrain decoding too.
CONSTRAINT_FIELDS = (
    "response_format",
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "structural_tag",
    "tools",
)


@dataclass(frozen=True)
class RequestLimits:
    max_request_bytes: int
    max_n: int
    max_stop_strings: int
    max_structured_output_bytes: int

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RequestLimits:
        return cls(
            max_request_bytes=settings.max_request_bytes,
            max_n=settings.max_n,
            max_stop_strings=settings.max_stop_strings,
            max_structured_output_bytes=settings.max_structured_output_bytes,
        )


def check_openai_request(body: dict[str, Any], limits: RequestLimits) -> None:
    """Raise a `RequestError` naming the first field of an OpenAI request body beyond the service's bounds."""
    for field in ("n", "best_of"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > limits.max_n:
            raise RequestError(f"at most {limits.max_n} (the service's max_n); got {value}", field=field, status=400)
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > limits.max_stop_strings:
        raise RequestError(
            f"at most {limits.max_stop_strings} stop strings (max_stop_strings); got {len(stop)}",
            field="stop",
            status=400,
        )
    for field in CONSTRAINT_FIELDS:
        value = body.get(field)
        if value is None:
            continue
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > limits.max_structured_output_bytes:
            raise RequestError(
                f"{size} bytes; structured-output constraints may take at most {limits.max_structured_output_bytes} "
                "(max_structured_output_bytes)",
                field=field,
                status=400,
            )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return True  # vLLM (FastAPI) parses a body without a content type as JSON


class _Disconnected(Exception):
    """The client went away before its body was read: nobody to answer."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body exceeds {limit} bytes (max_request_bytes)", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = _declared_length(scope)
            if declared is not None and declared > self.limits.max_request_bytes:
                raise RequestError(
                    f"the request body has {declared} bytes, more than {self.limits.max_request_bytes} "
                    "(max_request_bytes)",
                    status=413,
                )
            body = await _read_body(receive, self.limits.max_request_bytes)
            if scope["path"].startswith(OPENAI_PREFIX) and body and _is_json(scope):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    check_openai_request(parsed, self.limits)
        except _Disconnected:
            return
        except ServiceError as exc:
            await error_response(exc)(scope, receive, send)
            return

        replayed: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            # The body once, as read; then the client's own messages (a disconnect must still reach the app).
            nonlocal replayed
            if replayed is not None:
                message, replayed = replayed, None
                return message
            return await receive()

        await self.app(scope, replay, send)
