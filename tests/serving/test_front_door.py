"""The request bounds (serving/request_limits.py) and the JSON-only gate with its error reshaping
(serving/content_type.py), each in front of a real Starlette app, through Starlette's TestClient.

The apps echo what reached them, so a test sees both the refusal and that an accepted body arrives intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.content_type import JsonEndpointsMiddleware, field_path
from serving.request_limits import RequestLimits, RequestLimitsMiddleware

LIMITS = RequestLimits(max_request_bytes=4096, max_n=4, max_stop_strings=3, max_structured_output_bytes=512)


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


@pytest.fixture
def limited() -> Iterator[TestClient]:
    app = Starlette(
        routes=[Route("/v1/completions", echo, methods=["POST"]), Route("/generate", echo, methods=["POST"])],
        middleware=[Middleware(RequestLimitsMiddleware, limits=LIMITS)],
    )
    with TestClient(app) as client:
        yield client


def assert_refused(response: object, status: int, param: str | None) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["param"] == param and error["code"] == status
    return str(error["message"])


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("n", 5, "max_n"),
        ("best_of", 1000, "max_n"),
        ("stop", ["a", "b", "c", "d"], "max_stop_strings"),
        (
            "response_format",
            {"type": "json_schema", "json_schema": {"schema": {"enum": ["x" * 600]}}},
            "max_structured",
        ),
        ("structured_outputs", {"grammar": "root ::= " + '"a" ' * 200}, "max_structured"),
        ("guided_grammar", "root ::= " + '"a" ' * 200, "max_structured"),
        ("guided_json", {"enum": ["x" * 600]}, "max_structured"),
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"enum": ["x" * 600]}}}], "max_struct"),
    ],
)
def test_openai_requests_beyond_a_bound_get_400_naming_the_field(
    limited: TestClient, field: str, value: object, setting: str
) -> None:
    response = limited.post("/v1/completions", json={"model": "m", "prompt": "hi", field: value})
    assert setting in assert_refused(response, 400, field)


def test_openai_requests_within_bounds_arrive_unchanged(limited: TestClient) -> None:
    body = {"prompt": "hi", "n": 4, "best_of": 4, "stop": ["a", "b", "c"], "response_format": {"type": "json_object"}}
    response = limited.post("/v1/completions", json=body)
    assert response.status_code == 200 and response.json() == body
    # A single stop string, a body that is not an object, a body that is not JSON: vLLM's to judge.
    for content in (json.dumps({"stop": "x" * 100}), "[1, 2]", "not json {"):
        response = limited.post("/v1/completions", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 200 and response.text == content


def test_the_service_own_endpoints_are_not_checked_for_openai_fields(limited: TestClient) -> None:
    response = limited.post("/generate", json={"n": 100})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/completions", "/generate"])
def test_a_body_beyond_max_request_bytes_gets_413(limited: TestClient, path: str) -> None:
    big = json.dumps({"prompt": "x" * 5000})
    assert_refused(limited.post(path, content=big, headers={"content-type": "application/json"}), 413, None)
    # The same without a Content-Length (chunked): counted while it arrives.
    chunked = limited.post(path, content=iter([big[:3000].encode(), big[3000:].encode()]))
    assert "max_request_bytes" in assert_refused(chunked, 413, None)


class Item(BaseModel):
    text: str = Field(min_length=1)


class Batch(BaseModel):
    items: list[Item]
    top_p: float = Field(1.0, gt=0, le=1)


async def bentoml_like(request: Request) -> Response:
    """Validates as BentoML's JSON serde does and answers its errors in BentoML's shapes (its app.py)."""
    try:
        Batch.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        detail = exc.errors(include_context=False, include_input=False)
        return JSONResponse({"error": f"{exc.error_count()} validation error for {exc.title}", "detail": detail}, 400)
    if request.query_params.get("fail"):
        return JSONResponse({"error": "An unexpected error has occurred, please check the server log."}, 500)
    if request.query_params.get("refuse"):
        return JSONResponse([{"error": "not allowed"}], 415)
    return JSONResponse({"ok": True})


@pytest.fixture
def json_only() -> Iterator[TestClient]:
    app = Starlette(
        routes=[Route("/batch", bentoml_like, methods=["POST"]), Route("/v1/echo", echo, methods=["POST"])],
        middleware=[Middleware(JsonEndpointsMiddleware, routes=["/batch"])],
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "text/plain", "application/vnd.bentoml+pickle"]
)
def test_the_service_endpoints_refuse_other_content_types_with_415(json_only: TestClient, content_type: str) -> None:
    response = json_only.post("/batch", content=b'{"items": []}', headers={"content-type": content_type})
    assert "application/json" in assert_refused(response, 415, None)


def test_json_with_or_without_a_content_type_passes(json_only: TestClient) -> None:
    body = b'{"items": [{"text": "a"}]}'
    assert json_only.post("/batch", content=body, headers={"content-type": "application/json; charset=utf-8"}).json()
    assert json_only.post("/batch", content=body).json() == {"ok": True}
    # Other apps (vLLM's /v1) are left to judge their own content types.
    assert json_only.post("/v1/echo", content=b"x", headers={"content-type": "text/plain"}).text == "x"


def test_validation_errors_come_back_in_the_service_shape_naming_the_field(json_only: TestClient) -> None:
    response = json_only.post("/batch", json={"items": [{"text": "a"}, {"text": ""}], "top_p": 0})
    message = assert_refused(response, 400, "items[1].text")
    assert "top_p" in message  # every error is told, the first one is `param`
    assert response.json()["error"]["type"] == "invalid_request_error"

    malformed = json_only.post("/batch", content=b'{"items": [', headers={"content-type": "application/json"})
    assert "JSON" in assert_refused(malformed, 400, "body")


def test_bentoml_other_errors_come_back_in_the_service_shape(json_only: TestClient) -> None:
    body = {"items": [{"text": "a"}]}
    assert "not allowed" in assert_refused(json_only.post("/batch?refuse=1", json=body), 415, None)
    failed = json_only.post("/batch?fail=1", json=body)
    assert_refused(failed, 500, None)
    assert failed.json()["error"]["type"] == "internal_error"


def test_field_path_names_nested_fields() -> None:
    assert field_path(("items", 0, "text")) == "items[0].text"
    assert field_path(("adapter", "name")) == "adapter.name"
    assert field_path(()) is None
