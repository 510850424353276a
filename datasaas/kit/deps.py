"""FastAPI dependencies shared by the REST routes and the GraphQL context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from datasaas.attribution import client_ip
from datasaas.config import Settings
from datasaas.resolvers.sites import Principal, authenticate_shared
from datasaas.storage.engine import Database


def request_client_ip(request: Request) -> str | None:
    """Return the client address: the socket peer, or X-Forwarded-For from a trusted proxy."""
    settings: Settings = request.app.state.settings
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_networks)


# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool,
# a thread hop per request for what is an attribute read.


async def get_database(request: HTTPConnection) -> Database:
    """Return the app's database (for HTTP requests and WebSockets alike)."""
    database: Database = request.app.state.database
    return database


async def request_principal(request: Request) -> Principal:
    """Authenticate the request's bearer key, once per request (401 on failure)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    database: Database = request.app.state.database
    principal = await authenticate_shared(database.keys, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


class BearerKey(HTTPBearer):
    """The request's API key, as one security dependency: OpenAPI shows the bearer scheme (the
    "Authorize" button in /docs), and solving it authenticates the key (401 on failure).

    The raw header is parsed by the resolvers, so that REST and GraphQL share one set of
    messages. One dependency rather than a scheme plus an authenticator: FastAPI solves each
    dependency per request, tens of microseconds apiece, and every write goes through this."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        """Authenticate the request's key (``request_principal``)."""
        return await request_principal(request)


get_principal = BearerKey(
    auto_error=False, description="An API key: `ds_live_...`", scheme_name="HTTPBearer"
)


DatabaseDep = Annotated[Database, Depends(get_database)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
