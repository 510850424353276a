"""HTTP middleware: rate limits (per key, per IP, per IP for failed authentication), the last
line of error handling, and the security headers every response carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasaas.kit.deps import request_client_ip
from datasaas.kit.errors import error_body, unexpected_error_response
from datasaas.ratelimit import RateLimitPolicy, RateLimitState
from datasaas.resolvers.sites import Principal, hash_secret
from datasaas.storage.engine import Database

PROBES = frozenset({"/healthz", "/readyz"})
_WRITE_METHODS = frozenset({"POST", "DELETE"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
"""For the app's own HTML pages (GraphiQL, API docs, dashboard): only the app's own assets."""


def _bearer_digest(request: Request) -> str | None:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return hash_secret(secret.strip())


def _refusal(request: Request, message: str, state: RateLimitState) -> JSONResponse:
    body: dict[str, object]
    if request.url.path.startswith("/graphql"):
        body = {"errors": [{"message": message, "extensions": {"code": "RATE_LIMITED"}}]}
    else:
        body = error_body("rate_limited", message)
    return JSONResponse(body, status_code=429, headers=state.headers())


class RateLimits:
    """Pure ASGI middleware applying a ``RateLimitPolicy`` and stamping RateLimit headers.

    ``self_limited`` names the (method, path) pairs whose route charges its own budget (the
    tracker's events, which cost their batch size); they are only stamped here.

    Pure ASGI rather than ``BaseHTTPMiddleware``: that one runs the route in a task of its own
    with memory streams between, a cost every request paid. The request's outcome (its status,
    whether its key authenticated) is settled when the response starts, before a byte of it is
    sent, so a client's next request always meets the updated budget. An unhandled error is
    answered here (503 for an outage, 500 for a bug) so that it too carries the headers.
    """

    def __init__(
        self, app: ASGIApp, *, policy: RateLimitPolicy, self_limited: Iterable[tuple[str, str]]
    ) -> None:
        self.app = app
        self.policy = policy
        self._self_limited = frozenset(self_limited)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit (or refuse) the request, answer it, settle its authentication outcome."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if (request.method, scope["path"]) in self._self_limited:
            await self._answer(request, receive, send, settle=None)
            return
        ip = request_client_ip(request) or "unknown"
        digest = _bearer_digest(request)
        admission = await self.policy.admit(key_digest=digest, ip=ip, probe=scope["path"] in PROBES)
        if admission.refusal is not None:
            await _refusal(request, admission.refusal, admission.state)(scope, receive, send)
            return
        request.state.rate_limit = admission.state

        async def settle(status: int) -> None:
            principal: Principal | None = getattr(request.state, "principal", None)
            await self.policy.settle(
                key_digest=digest, ip=ip, authenticated=principal is not None, status=status
            )

        await self._answer(request, receive, send, settle=settle)

    async def _answer(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        *,
        settle: Callable[[int], Awaitable[None]] | None,
    ) -> None:
        started = False

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if settle is not None:
                    await settle(int(message["status"]))
                stamped: RateLimitState | None = getattr(request.state, "rate_limit", None)
                if stamped is not None:
                    MutableHeaders(scope=message).update(stamped.headers())
            await send(message)

        try:
            await self.app(request.scope, receive, send_stamped)
        except Exception as exc:
            if started:  # too late for an answer: the connection is dropped
                raise
            await unexpected_error_response(request, exc)(request.scope, receive, send_stamped)


def stamp_rate_limit(request: Request, state: RateLimitState) -> None:
    """Have the middleware send ``state`` as this request's RateLimit headers."""
    request.state.rate_limit = state


class SecurityHeaders:
    """Pure ASGI middleware adding security headers to every HTTP response.

    ``nosniff`` everywhere; ``Cache-Control: no-store`` on API answers (they carry a site's
    numbers); on HTML pages a Content-Security-Policy allowing only the app's own assets,
    ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` against clickjacking.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = path.startswith(("/api/v1", "/graphql"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Referrer-Policy", "no-referrer")
                elif api:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AnnounceWrites:
    """Pure ASGI middleware announcing every write request to the group commit on arrival.

    POST and DELETE under ``/api/`` are writes; the group commit's writer, with a batch due,
    waits for the writes announced before it (``GroupCommit.arriving``) instead of committing
    the first of a wave of writers on its own. Announced here, before rate limiting and
    authentication, because those are where a wave of requests spends its time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, announced while it runs if it is a write."""
        if (
            scope["type"] != "http"
            or scope["method"] not in _WRITE_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        database: Database | None = getattr(scope["app"].state, "database", None)
        if database is None:  # not started (or shutting down): nothing to announce to
            await self.app(scope, receive, send)
            return
        with database.arriving():
            await self.app(scope, receive, send)
