"""The ASGI application factory: wiring of settings, database, limits and the two front doors."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from datasaas import __version__
from datasaas.attribution import GeoResolver
from datasaas.config import Settings, get_settings
from datasaas.dashboard import router as dashboard_router
from datasaas.errors import ServiceUnavailable
from datasaas.inbound.routes import router as providers_router
from datasaas.kit.cors import ApiCORS
from datasaas.kit.errors import error_body, install_error_handlers
from datasaas.kit.explorers import STATIC_PATH, static_files
from datasaas.kit.explorers import router as explorers_router
from datasaas.kit.middleware import AnnounceWrites, RateLimits, SecurityHeaders
from datasaas.live import Live
from datasaas.ratelimit import RateLimiter, RateLimitPolicy
from datasaas.rest_compat.live import router as rest_live_router
from datasaas.rest_compat.openapi import install_openapi
from datasaas.rest_compat.routes import router as rest_router
from datasaas.schema.router import create_graphql_router
from datasaas.storage import warmup
from datasaas.storage.engine import Database, background_context
from datasaas.storage.health import readiness
from datasaas.tracking.routes import EVENTS_PATH
from datasaas.tracking.routes import router as events_router

logger = logging.getLogger("datasaas")
SHUTDOWN_SECONDS = 15

DESCRIPTION = """
Goals & revenue analytics. REST routes under `/api/v1` are compatible with the DataSaaS API;
the same data is available over GraphQL at `/graphql`. Authenticate with
`Authorization: Bearer ds_live_...`. Errors use `{"error": {"code", "message", "details?"}}`.
"""


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
        database = Database(settings.database_url, pool=settings.pool_options)
        app.state.database = database
        app.state.geo = GeoResolver(settings.geoip_db)
        app.state.live = await Live.start(database, redis_url=settings.redis_url)
        _tune_garbage_collector()
        # Derived caches of data that no import warmed (restored files, older versions).
        warming = asyncio.create_task(warmup.warm_all(database), context=background_context())
        try:
            yield
        finally:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
            # Bounded: a shutdown must end even if a background loop misbehaves (the outbox
            # keeps what was not delivered; the next process delivers it).
            try:
                async with asyncio.timeout(SHUTDOWN_SECONDS):
                    await app.state.live.stop()
            except TimeoutError:
                logger.warning("live machinery did not stop within %s s", SHUTDOWN_SECONDS)
            app.state.geo.close()
            await database.dispose()

    app = FastAPI(
        title="DataSaaS Goals & Revenue API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The explorers are served from the app's own assets (datasaas.kit.explorers), not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    policy = RateLimitPolicy(
        RateLimiter(settings.redis_url),
        requests_per_minute=settings.rate_limit_per_minute,
        auth_failures_per_minute=settings.auth_failures_per_minute,
        events_per_minute=settings.events_rate_limit_per_minute,
    )
    app.state.rate_limit_policy = policy
    install_error_handlers(app)
    install_openapi(app)
    # Tracker events pay per event inside their route (a batch costs its size).
    app.add_middleware(RateLimits, policy=policy, self_limited=[("POST", EVENTS_PATH)])
    app.add_middleware(AnnounceWrites)
    app.add_middleware(SecurityHeaders)
    if settings.cors_origin_list:  # outside the rate limit, so that a 429 is readable too
        app.add_middleware(ApiCORS, origins=settings.cors_origin_list)

    app.include_router(rest_router)
    app.include_router(rest_live_router)
    app.include_router(events_router)
    app.include_router(providers_router)
    app.include_router(create_graphql_router(settings), prefix="/graphql")
    app.include_router(explorers_router)
    app.include_router(dashboard_router)
    app.mount(STATIC_PATH, static_files(), name="static")

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database answers and accepts writes",
        responses={503: {"description": "A check failed; `checks` says which"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks = await readiness(request.app.state.database)
        if all(outcome == "ok" for outcome in checks.values()):
            return JSONResponse({"status": "ok", "checks": checks})
        failed = ", ".join(
            f"{name} {outcome}" for name, outcome in checks.items() if outcome != "ok"
        )
        logger.warning("readiness check failed: %s", failed)
        error = ServiceUnavailable(f"Not ready: {failed}.")
        return JSONResponse(
            {"status": "unavailable", "checks": checks, **error_body(error.code, error.message)},
            status_code=error.status,
            headers={"Retry-After": str(error.retry_after)},
        )

    return app
