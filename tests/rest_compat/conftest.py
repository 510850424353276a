"""Fixtures of the REST tests."""

from __future__ import annotations

import pytest

from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from tests.factories import make_key, make_site


@pytest.fixture
async def key(database: Database) -> IssuedKey:
    """A Read & Write key of the test site ``ds_test``."""
    await make_site(database, site_id="ds_test")
    return await make_key(database, site_id="ds_test")
