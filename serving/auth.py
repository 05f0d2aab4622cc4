"""Optional API key for every endpoint but the health checks and the API docs page."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from serving.errors import AuthenticationError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# Probes must work without credentials (Kubernetes, BentoCloud); the Swagger page itself holds no
# data, and its "Authorize" button sends the key to the endpoints it calls.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/docs"})
OPEN_PREFIXES = ("/static_content/",)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        # compare_digest: the time taken must not tell how much of a guessed key was right.
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send 'Authorization: Bearer <key>'" if not given else "invalid API key"
        # OpenAI's error shape, so the openai SDK raises AuthenticationError with our message.
        await error_response(AuthenticationError(message))(scope, receive, send)
