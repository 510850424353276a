"""Fixtures for the tracking tests: a site, keys, and clients behind a trusted proxy or not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from datasaas.app import create_app
from datasaas.config import Settings
from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from datasaas.storage.models import Site
from tests.factories import make_key, make_site

PROXY = ("127.0.0.1", 50000)


@pytest.fixture
async def site(database: Database) -> Site:
    """The tracked site: ``ds_test`` on ``example.com``."""
    return await make_site(database, site_id="ds_test", domain="example.com")


@pytest.fixture
async def key(database: Database, site: Site) -> IssuedKey:
    """A Read & Write key of the site."""
    return await make_key(database, site_id=site.id)


@pytest.fixture
async def proxied_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application configured to believe X-Forwarded-For from 127.0.0.1."""
    proxied = Settings(
        database_url=settings.database_url,
        geoip_db=settings.geoip_db,
        trusted_proxies="127.0.0.1/32",
    )
    application = create_app(proxied)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def proxied_client(proxied_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests arrive from the trusted proxy 127.0.0.1."""
    transport = httpx.ASGITransport(app=proxied_app, client=PROXY)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
