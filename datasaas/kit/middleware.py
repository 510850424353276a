"""HTTP middleware: rate limits (per key, per IP, per IP for failed authentication), the last
line of error handling, and the security headers every response carries.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasaas.config import Settings
from datasaas.kit.deps import request_client_ip
from datasaas.kit.errors import error_body, unexpected_error_response
from datasaas.ratelimit import RateLimiter, RateLimitState
from datasaas.resolvers.sites import Principal, hash_secret

EVENTS_PATH = "/api/events"
PROBES = frozenset({"/healthz", "/readyz"})
AUTH_FAILURE_NAMESPACE = "auth_failure"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
"""For the app's own HTML pages (GraphiQL, API docs, dashboard): only the app's own assets."""

Handler = Callable[[Request], Awaitable[Response]]


class KnownKeys:
    """Digests of keys that authenticated in this process recently (bounded, least recent out).

    Only used to spare such keys from the failed-authentication block of their IP; they are
    still looked up on every request, so revocation stays immediate.
    """

    def __init__(self, capacity: int = 10_000, ttl_seconds: float = 3_600) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl_seconds

    def add(self, digest: str) -> None:
        """Remember that ``digest`` authenticated now."""
        self._seen[digest] = time.monotonic() + self._ttl
        self._seen.move_to_end(digest)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def __contains__(self, digest: object) -> bool:
        expires = self._seen.get(digest) if isinstance(digest, str) else None
        return expires is not None and expires > time.monotonic()


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


async def _answer(request: Request, call_next: Handler) -> Response:
    """The route's response; an unhandled error is answered here, inside this middleware, so
    that it too carries the RateLimit headers (503 for an outage, 500 for a bug)."""
    try:
        return await call_next(request)
    except Exception as exc:
        return unexpected_error_response(request, exc)


async def rate_limit(request: Request, call_next: Handler) -> Response:
    """Count the request against its key (or IP), throttle failed authentication per IP, and
    stamp the RateLimit headers on the answer."""
    if request.url.path == EVENTS_PATH and request.method == "POST":
        # Event ingestion is limited per event (batches cost their size) inside its route.
        response = await _answer(request, call_next)
        return _stamp(request, response)
    settings: Settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    known: KnownKeys = request.app.state.known_keys
    ip = request_client_ip(request) or "unknown"
    digest = _bearer_digest(request)
    if digest is not None and digest not in known:
        # Before any database lookup: an IP that keeps failing may not try more keys.
        failures = await limiter.peek(AUTH_FAILURE_NAMESPACE, ip, settings.auth_failures_per_minute)
        if failures.remaining <= 0:
            refused = RateLimitState(False, failures.limit, 0, failures.reset_after)
            message = "Too many failed authentications from this address; retry later."
            return _refusal(request, message, refused)
    namespace, identity = ("key", digest) if digest is not None else ("ip", ip)
    if request.url.path in PROBES:
        # Probes report the budget but never spend it: an orchestrator must not see 429.
        state = await limiter.peek(namespace, identity, settings.rate_limit_per_minute)
    else:
        state = await limiter.hit(namespace, identity, settings.rate_limit_per_minute)
    request.state.rate_limit = state
    if not state.allowed:
        message = f"Rate limit of {state.limit} requests per minute exceeded; retry later."
        return _refusal(request, message, state)
    response = await _answer(request, call_next)
    principal: Principal | None = getattr(request.state, "principal", None)
    if response.status_code == 401:
        await limiter.hit(AUTH_FAILURE_NAMESPACE, ip, settings.auth_failures_per_minute)
    elif principal is not None and digest is not None:
        known.add(digest)
    return _stamp(request, response)


def _stamp(request: Request, response: Response) -> Response:
    stamped: RateLimitState | None = getattr(request.state, "rate_limit", None)
    if stamped is not None:
        response.headers.update(stamped.headers())
    return response


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
