"""CORS for the API doors (``/api/v1``, ``/graphql``), for the origins in
``DATASAAS_CORS_ORIGINS``.

Starlette's ``CORSMiddleware`` does the work; this only scopes it to those paths, so
``/api/events`` keeps its own open CORS (any origin, answered by its route). Keys travel in the
``Authorization`` header, never in cookies, so credentials are not allowed: an origin list of
``*`` stays safe.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIXES = ("/api/v1/", "/graphql")
ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
EXPOSED_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "Idempotent-Replayed",
    "WWW-Authenticate",
)
MAX_AGE = 600


class ApiCORS:
    """CORSMiddleware on the API paths only; every other path goes straight to the app."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route API requests through CORS."""
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(API_PREFIXES):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
