"""The OpenAPI document at /docs.json: BentoML's, made a valid OpenAPI 3.0 document that tells the truth.

BentoML declares OpenAPI 3.0.2 but fills it with pydantic's JSON Schema (2020-12) output: numeric
`exclusiveMinimum`, `{"type": "null"}` branches, `examples` lists, `default: null` on non-nullable
fields; all invalid in 3.0 (and schemathesis or code generators reject or misread them). Its error
responses describe BentoML's bodies, not the ones the service answers. `openapi_document` rewrites the
schemas into their 3.0 spelling and documents every error response of the service's own endpoints with
the service's one error body (serving/errors.py); `OpenAPIMiddleware` serves it in place of BentoML's.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from serving.openapi_info import service_info
from serving.protocol import ErrorBody

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

DOCS_PATH = "/docs.json"
ERROR_SCHEMA_REF = "#/components/schemas/ErrorBody"
# What the service's own endpoints may answer besides 200, and why (serving/errors.py's statuses, the
# front door's refusals, BentoML's validation errors reshaped by serving/content_type.py).
ERROR_RESPONSES = {
    400: "Invalid request: the body is not valid JSON or a field has the wrong type or range (`param` names it).",
    401: "Missing or wrong API key (when the service has one).",
    404: "Something the request names (an adapter) does not exist.",
    413: "The request body, or the text it carries, is too large.",
    415: "The body is not sent as application/json.",
    422: "The request is well-formed but cannot be served as asked (`param` names the field).",
    429: "More requests in flight than the replica admits (max_concurrency): retry after `Retry-After` seconds.",
    500: "An unexpected failure of the service.",
    502: "A store the service reads from (S3) failed midway: the same request may succeed when retried.",
    503: "The replica is starting, draining or its engine failed: retry after `Retry-After`, or elsewhere.",
}


def _openapi30_schema(node: Any) -> Any:
    """pydantic's JSON Schema spelled as OpenAPI 3.0 schema objects, recursively."""
    if isinstance(node, list):
        return [_openapi30_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi30_schema(value) for key, value in node.items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value = node.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[bound] = value
            node[exclusive] = True
    for keyword in ("anyOf", "oneOf"):
        branches = node.get(keyword)
        if isinstance(branches, list) and {"type": "null"} in branches:
            rest = [branch for branch in branches if branch != {"type": "null"}]
            del node[keyword]
            node["nullable"] = True
            if len(rest) == 1 and "$ref" not in rest[0]:
                node = {**rest[0], **node}
            elif len(rest) == 1:
                node["allOf"] = rest  # siblings of a bare $ref are ignored in 3.0
            else:
                node[keyword] = rest
    if "default" in node and node["default"] is None:
        node["nullable"] = True
    examples = node.get("examples")
    if isinstance(examples, list):  # a schema's; a media type's `examples` is a mapping
        del node["examples"]
        if examples:
            node["example"] = examples[0]
    return node


def openapi_document(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's document (as JSON: string keys) made valid OpenAPI 3.0, with the service's error responses."""
    doc = json.loads(json.dumps(spec))
    doc["info"] = service_info(doc["info"])
    doc["components"]["schemas"] = {
        name: _openapi30_schema(schema) for name, schema in doc["components"]["schemas"].items()
    }
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in {**error_schema.pop("$defs"), "ErrorBody": error_schema}.items():
        doc["components"]["schemas"][name] = _openapi30_schema(schema)
    error = {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}
    operation_ids: set[str] = set()
    for path, path_item in doc["paths"].items():
        for operation in path_item.values():
            operation_id = operation.get("operationId")
            if operation_id in operation_ids:
                # BentoML gives a task's /cancel the operationId of its /retry; ids must be unique.
                operation_id = operation["operationId"] = (
                    f"{operation_id.split('__')[0]}__{path.strip('/').replace('/', '_')}"
                )
            if operation_id is not None:
                operation_ids.add(operation_id)
            for media_type in operation.get("requestBody", {}).get("content", {}).values():
                media_type["schema"] = _openapi30_schema(media_type.get("schema", {}))
            responses = operation.get("responses", {})
            for response in responses.values():
                for media_type in response.get("content", {}).values():
                    media_type["schema"] = _openapi30_schema(media_type.get("schema", {}))
            if "x-bentoml-name" in operation:  # the service's own endpoints (not health checks, metrics)
                for status, description in ERROR_RESPONSES.items():
                    responses[str(status)] = {"description": description, "content": error}
    for bentoml_error in ("InvalidArgument", "NotFound", "InternalServerError"):
        doc["components"]["schemas"].pop(bentoml_error, None)
    return doc


class OpenAPIMiddleware:
    """Answers GET /docs.json with `openapi_document` of the service's spec (built once, on first request)."""

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app = app
        self.service = service

    @functools.cached_property
    def _response(self) -> JSONResponse:
        return JSONResponse(openapi_document(self.service.openapi_spec.asdict()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == DOCS_PATH and scope["method"] in ("GET", "HEAD"):
            await self._response(scope, receive, send)
            return
        await self.app(scope, receive, send)
