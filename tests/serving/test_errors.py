"""The one error model: OpenAI-shaped bodies, statuses, Retry-After, the endpoint decorator, field prefixes."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from starlette.responses import JSONResponse

from serving.errors import (
    AuthenticationError,
    NotFoundError,
    OverloadedError,
    RequestError,
    ServiceError,
    UnavailableError,
    answers_errors,
    error_response,
)


def body(response: JSONResponse) -> dict[str, object]:
    return json.loads(bytes(response.body))


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (ServiceError("boom"), 500, "internal_error"),
        (RequestError("must be a non-empty string", field="text"), 422, "invalid_request_error"),
        (RequestError("too long", field="text", status=413), 413, "invalid_request_error"),
        (NotFoundError("unknown adapter 'x'", field="adapter"), 404, "not_found_error"),
        (AuthenticationError("invalid API key"), 401, "authentication_error"),
        (UnavailableError("draining", retry_after_s=1), 503, "service_unavailable"),
        (OverloadedError("busy", retry_after_s=0.2), 429, "rate_limit_exceeded"),
    ],
)
def test_every_error_answers_in_the_openai_shape(error: ServiceError, status: int, kind: str) -> None:
    response = error_response(error)
    assert response.status_code == status
    assert body(response) == {"error": {"message": error.message, "type": kind, "param": error.field, "code": status}}


def test_message_names_the_field_but_the_body_keeps_them_apart() -> None:
    error = RequestError("must be a non-empty string", field="text")
    assert str(error) == "text: must be a non-empty string"
    assert body(error_response(error))["error"] == {
        "message": "must be a non-empty string",
        "type": "invalid_request_error",
        "param": "text",
        "code": 422,
    }


@pytest.mark.parametrize(("retry_after_s", "header"), [(0.2, "1"), (1, "1"), (4.1, "5"), (30, "30")])
def test_retry_after_is_whole_seconds_at_least_one(retry_after_s: float, header: str) -> None:
    assert error_response(OverloadedError("busy", retry_after_s=retry_after_s)).headers["retry-after"] == header


def test_only_retryable_errors_carry_retry_after_and_only_auth_errors_www_authenticate() -> None:
    plain = error_response(RequestError("bad", field="x")).headers
    assert "retry-after" not in plain and "www-authenticate" not in plain
    assert error_response(AuthenticationError("invalid API key")).headers["www-authenticate"] == "Bearer"


def test_with_field_prefix_keeps_class_status_and_message() -> None:
    error = RequestError("is 9000 characters long", field="text", status=413)
    item = error.with_field_prefix("items[3].")
    assert type(item) is RequestError and item.status == 413 and item.message == error.message
    assert item.field == "items[3].text" and str(item) == "items[3].text: is 9000 characters long"
    assert error.field == "text"  # the original is untouched
    whole = NotFoundError("no such thing").with_field_prefix("items[0].")
    assert whole.field == "items[0]" and isinstance(whole, NotFoundError)


def test_answers_errors_turns_a_service_error_into_its_response_and_keeps_the_signature() -> None:
    async def extract(text: str, persist: bool = True) -> dict[str, str]:
        """Docstring BentoML shows."""
        if not text:
            raise RequestError("must be a non-empty string", field="text")
        if text == "crash":
            raise ValueError("a bug, not a caller's error")
        return {"text": text}

    wrapped = answers_errors(extract)

    async def call(text: str) -> object:
        return await wrapped(text)

    assert asyncio.run(call("hi")) == {"text": "hi"}
    response = asyncio.run(call(""))
    assert isinstance(response, JSONResponse) and response.status_code == 422
    assert body(response)["error"] == {
        "message": "must be a non-empty string",
        "type": "invalid_request_error",
        "param": "text",
        "code": 422,
    }
    with pytest.raises(ValueError, match="a bug"):  # only ServiceErrors are answered; others stay 500s
        asyncio.run(call("crash"))
    # BentoML builds the endpoint's schema from the signature it reads through the wrapper.
    assert inspect.signature(wrapped) == inspect.signature(extract)
    assert wrapped.__doc__ == "Docstring BentoML shows." and wrapped.__name__ == "extract"
