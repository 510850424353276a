"""The ASGI application factory: wiring of settings, database, limits and the two front doors."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from datasaas import __version__
from datasaas.config import Settings, get_settings
from datasaas.cors import ApiCORS
from datasaas.deps import request_client_ip
from datasaas.explorers import STATIC_PATH, static_files
from datasaas.explorers import router as explorers_router
from datasaas.openapi import install_openapi
from datasaas.ratelimit import RateLimiter, RateLimitState
from datasaas.rest_compat.errors import error_body, install_error_handlers
from datasaas.rest_compat.routes import router as rest_router
from datasaas.schema.router import create_graphql_router
from datasaas.storage.engine import Database
from datasaas.tracking.attribution import GeoResolver
from datasaas.tracking.routes import router as events_router

logger = logging.getLogger("datasaas")

EVENTS_PATH = "/api/events"
PROBES = frozenset({"/healthz", "/readyz"})

DESCRIPTION = """
Goals & revenue analytics. REST routes under `/api/v1` are compatible with the DataSaaS API;
the same data is available over GraphQL at `/graphql`. Authenticate with
`Authorization: Bearer ds_live_...`. Errors use `{"error": {"code", "message", "details?"}}`.
"""


async def _answer(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The route's response; an unhandled error becomes the 500 envelope here, inside this
    middleware, so that it too carries the RateLimit headers."""
    try:
        return await call_next(request)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "Internal server error."), status_code=500)


async def _rate_limit(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Count the request against its key (or IP) and stamp the RateLimit headers on the answer."""
    settings: Settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    if request.url.path == EVENTS_PATH and request.method == "POST":
        # Event ingestion is limited per event (batches cost their size) inside its route.
        response = await _answer(request, call_next)
    else:
        authorization = request.headers.get("authorization", "")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            namespace, identity = "key", hashlib.sha256(secret.strip().encode()).hexdigest()
        else:
            namespace, identity = "ip", request_client_ip(request) or "unknown"
        if request.url.path in PROBES:
            # Probes report the budget but never spend it: an orchestrator must not see 429.
            state = await limiter.peek(namespace, identity, settings.rate_limit_per_minute)
        else:
            state = await limiter.hit(namespace, identity, settings.rate_limit_per_minute)
        request.state.rate_limit = state
        if not state.allowed:
            message = f"Rate limit of {state.limit} requests per minute exceeded; retry later."
            body: dict[str, object]
            if request.url.path.startswith("/graphql"):
                body = {"errors": [{"message": message, "extensions": {"code": "RATE_LIMITED"}}]}
            else:
                body = error_body("rate_limited", message)
            return JSONResponse(body, status_code=429, headers=state.headers())
        response = await _answer(request, call_next)
    stamped: RateLimitState | None = getattr(request.state, "rate_limit", None)
    if stamped is not None:
        response.headers.update(stamped.headers())
    return response


def _tune_garbage_collector() -> None:
    """Keep full collections off the read path.

    A read turns tens of thousands of rows into objects; with CPython's default thresholds that
    triggers full collections of the whole heap (60-130 ms measured at 1M visitors). Freezing
    the start-up heap and collecting the young generation less often removes those pauses.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; used by uvicorn (``factory=True``) and by the tests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        app.state.database = database
        app.state.geo = GeoResolver(settings.geoip_db)
        _tune_garbage_collector()
        try:
            yield
        finally:
            app.state.geo.close()
            await database.dispose()

    app = FastAPI(
        title="DataSaaS Goals & Revenue API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The explorers are served from the app's own assets (datasaas.explorers), not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    install_error_handlers(app)
    install_openapi(app)
    app.middleware("http")(_rate_limit)
    if settings.cors_origin_list:  # outside the rate limit, so that a 429 is readable too
        app.add_middleware(ApiCORS, origins=settings.cors_origin_list)

    app.include_router(rest_router)
    app.include_router(events_router)
    app.include_router(create_graphql_router(settings), prefix="/graphql")
    app.include_router(explorers_router)
    app.mount(STATIC_PATH, static_files(), name="static")

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database answers",
        responses={503: {"description": "Database unreachable"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        database: Database = request.app.state.database
        try:
            async with database.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            logger.warning("readiness check failed: %s", exc)
            return JSONResponse(error_body("unavailable", "Database unreachable."), status_code=503)
        return JSONResponse({"status": "ok"})

    return app
