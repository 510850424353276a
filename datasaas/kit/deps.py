"""FastAPI dependencies shared by the REST routes and the GraphQL context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from datasaas.attribution import GeoResolver, client_ip
from datasaas.config import Settings
from datasaas.ratelimit import RateLimitPolicy
from datasaas.resolvers.sites import Principal, authenticate_shared
from datasaas.storage.engine import Database

# Declared for OpenAPI (the "Authorize" button in /docs); the raw header is parsed by the
# resolvers so that REST and GraphQL share one set of messages.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `ds_live_...`")


def request_client_ip(request: Request) -> str | None:
    """Return the client address: the socket peer, or X-Forwarded-For from a trusted proxy."""
    settings: Settings = request.app.state.settings
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_networks)


# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool,
# a thread hop per request for what is an attribute read.


async def client_ip_dep(request: Request) -> str | None:
    """``request_client_ip`` as a dependency."""
    return request_client_ip(request)


async def get_database(request: HTTPConnection) -> Database:
    """Return the app's database (for HTTP requests and WebSockets alike)."""
    database: Database = request.app.state.database
    return database


async def get_settings_dep(request: Request) -> Settings:
    """Return the app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_rate_limit_policy(request: Request) -> RateLimitPolicy:
    """Return the app's rate-limit policy."""
    policy: RateLimitPolicy = request.app.state.rate_limit_policy
    return policy


async def get_geo(request: Request) -> GeoResolver:
    """Return the app's GeoIP reader."""
    geo: GeoResolver = request.app.state.geo
    return geo


async def get_principal(
    request: Request,
    database: Annotated[Database, Depends(get_database)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    """Authenticate the request's bearer key (401 on failure)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = await authenticate_shared(database.keys, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


DatabaseDep = Annotated[Database, Depends(get_database)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RateLimitPolicyDep = Annotated[RateLimitPolicy, Depends(get_rate_limit_policy)]
GeoDep = Annotated[GeoResolver, Depends(get_geo)]
ClientIpDep = Annotated[str | None, Depends(client_ip_dep)]
