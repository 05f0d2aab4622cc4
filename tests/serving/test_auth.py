"""ApiKeyMiddleware as an ASGI app in front of a real Starlette app, driven in-process over httpx."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serving.auth import ApiKeyMiddleware

KEY = "s3cret-key"


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.method} {request.url.path}")


INNER = Starlette(
    routes=[
        Route(path, echo, methods=["GET", "POST"])
        for path in ("/generate", "/v1/models", "/metrics", "/readyz", "/livez", "/", "/docs.json")
    ]
    + [Route("/static_content/{name}", echo)]
)


def request(method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=ApiKeyMiddleware(INNER, api_key=KEY))
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(send())


def test_the_right_key_reaches_the_app() -> None:
    for method, path in [("POST", "/generate"), ("GET", "/v1/models"), ("GET", "/metrics")]:
        response = request(method, path, {"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200 and response.text == f"{method} {path}"


def test_a_missing_key_is_401_in_the_openai_shape() -> None:
    response = request("POST", "/generate")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "message": "missing API key: send 'Authorization: Bearer <key>'",
            "type": "authentication_error",
            "param": None,
            "code": 401,
        }
    }


def test_a_wrong_key_or_scheme_is_401_invalid() -> None:
    for value in ("Bearer wrong", f"Basic {KEY}", KEY, f"Bearer {KEY} ", f"bearer {KEY}"):
        response = request("GET", "/v1/models", {"Authorization": value})
        assert response.status_code == 401, value
        assert response.json()["error"]["message"] == "invalid API key"


def test_probes_and_the_docs_page_need_no_key_but_only_they() -> None:
    for path in ("/readyz", "/livez", "/", "/docs.json", "/static_content/swagger-ui.css"):
        assert request("GET", path).status_code == 200, path
    # Open paths are matched exactly, not by prefix: the key is checked before any routing.
    assert request("GET", "/readyz-and-more").status_code == 401
    assert request("GET", "/docs.json/x").status_code == 401
    assert request("GET", "/metrics").status_code == 401
