"""The OpenAPI document the service serves at /docs.json is valid OpenAPI 3.0 and documents its error bodies.

Built from the real service definition (service.py imports no engine), as `OpenAPIMiddleware` builds it.
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

from serving.errors import RequestError, error_body
from serving.openapi import openapi_document
from serving.protocol import ErrorBody


@pytest.fixture(scope="module")
def bentoml_spec() -> dict[str, Any]:
    import service

    svc: Any = service.LLMService  # a bentoml Service at run time
    spec: dict[str, Any] = svc.openapi_spec.asdict()
    return spec


@pytest.fixture(scope="module")
def document(bentoml_spec: dict[str, Any]) -> dict[str, Any]:
    return openapi_document(bentoml_spec)


def test_the_document_is_valid_openapi_30(bentoml_spec: dict[str, Any], document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.0")
    errors = [str(error).splitlines()[0] for error in OpenAPIV30SpecValidator(document).iter_errors()]
    assert errors == []


def test_exclusive_bounds_are_spelled_the_30_way(document: dict[str, Any]) -> None:
    top_p = document["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"
    ]["top_p"]
    assert top_p["minimum"] == 0 and top_p["exclusiveMinimum"] is True and top_p["maximum"] == 1


def test_nullable_fields_stay_nullable(document: dict[str, Any]) -> None:
    meta = document["components"]["schemas"]["ExtractionMeta"]["properties"]
    assert meta["stored_at"] == {**meta["stored_at"], "type": "string", "nullable": True}
    assert "anyOf" not in meta["stored_at"]


def test_every_service_endpoint_documents_the_error_body_it_answers(document: dict[str, Any]) -> None:
    own = {path: item["post"] for path, item in document["paths"].items() if "x-bentoml-name" in item.get("post", {})}
    assert {"/generate", "/extract_entities", "/extract_entities_batch", "/viggo", "/admin/adapters"} <= set(own)
    for path, operation in own.items():
        for status in ("400", "413", "415", "422", "429", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    # The documented schema is the body serving/errors.py writes.
    written = error_body("bad", type=RequestError.type, param="text", code=422)
    assert ErrorBody.model_validate(written).model_dump() == written
    assert {"InvalidArgument", "NotFound", "InternalServerError"}.isdisjoint(document["components"]["schemas"])
