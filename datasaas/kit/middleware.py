"""HTTP middleware: rate limits (per key, per IP, per IP for failed authentication), the last
line of error handling, and the security headers every response carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasaas.kit.deps import request_client_ip
from datasaas.kit.errors import error_body, unexpected_error_response
from datasaas.ratelimit import RateLimitPolicy, RateLimitState
from datasaas.resolvers.sites import Principal, hash_secret

PROBES = frozenset({"/healthz", "/readyz"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
"""For the app's own HTML pages (GraphiQL, API docs, dashboard): only the app's own assets."""

Handler = Callable[[Request], Awaitable[Response]]


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


class RateLimits:
    """The ``http`` middleware applying a ``RateLimitPolicy`` and stamping RateLimit headers.

    ``self_limited`` names the (method, path) pairs whose route charges its own budget (the
    tracker's events, which cost their batch size); they are only stamped here.
    """

    def __init__(self, policy: RateLimitPolicy, *, self_limited: Iterable[tuple[str, str]]) -> None:
        self.policy = policy
        self._self_limited = frozenset(self_limited)

    async def __call__(self, request: Request, call_next: Handler) -> Response:
        """Admit (or refuse) the request, answer it, then settle its authentication outcome."""
        if (request.method, request.url.path) in self._self_limited:
            return _stamp(request, await _answer(request, call_next))
        ip = request_client_ip(request) or "unknown"
        digest = _bearer_digest(request)
        admission = await self.policy.admit(
            key_digest=digest, ip=ip, probe=request.url.path in PROBES
        )
        if admission.refusal is not None:
            return _refusal(request, admission.refusal, admission.state)
        request.state.rate_limit = admission.state
        response = await _answer(request, call_next)
        principal: Principal | None = getattr(request.state, "principal", None)
        await self.policy.settle(
            key_digest=digest,
            ip=ip,
            authenticated=principal is not None,
            status=response.status_code,
        )
        return _stamp(request, response)


def stamp_rate_limit(request: Request, state: RateLimitState) -> None:
    """Have the middleware send ``state`` as this request's RateLimit headers."""
    request.state.rate_limit = state


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
