"""The storage layer on both backends: migrations match the models, writers queue, not fail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from datasaas.storage.engine import Database
from datasaas.storage.migrate import schema_drift
from datasaas.storage.models import Goal
from tests.factories import make_site


async def test_migrations_match_models(database: Database) -> None:
    assert await schema_drift(database) == []


async def test_fifty_concurrent_write_transactions_all_commit(database: Database) -> None:
    await make_site(database)

    async def writer(i: int) -> None:
        async with database.write() as session:
            # Read then write inside one transaction: the pattern that makes deferred SQLite
            # transactions fail with "database is locked" when they try to upgrade.
            await session.execute(select(func.count()).select_from(Goal))
            session.add(Goal(site_id="ds_test", name=f"goal_{i}", created_at=datetime.now(UTC)))
            await asyncio.sleep(0)

    results = await asyncio.gather(*(writer(i) for i in range(50)), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    async with database.read() as session:
        count = await session.scalar(select(func.count()).select_from(Goal))
    assert count == 50


async def test_datetimes_round_trip_as_aware_utc(database: Database) -> None:
    site = await make_site(database)
    async with database.read() as session:
        row = await session.execute(text("SELECT created_at FROM site"))
        assert row.scalar_one() is not None
        from datasaas.storage.models import Site

        stored = await session.get(Site, site.id)
    assert stored is not None
    assert stored.created_at.tzinfo is UTC
    assert abs((stored.created_at - site.created_at).total_seconds()) < 1e-3
