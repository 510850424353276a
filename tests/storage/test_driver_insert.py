"""``sql.insert_many`` on SQLite binds rows itself and sends them with ``exec_driver_sql``:
what it stores and returns must be exactly what SQLAlchemy's own statements store and return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from datasaas.storage import sql
from datasaas.storage.types import UTCDateTime

pytestmark = pytest.mark.asyncio

_metadata = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(40), nullable=False, unique=True),
        Column("at", UTCDateTime, nullable=True),
        Column("meta", JSON, nullable=True),
        Column("flag", Boolean, nullable=True),
        Column("hits", Integer, nullable=False, default=0),
    )


_ours, _theirs = _table("ours"), _table("theirs")

_ROWS: list[dict[str, Any]] = [
    {
        "name": "whole-second",
        "at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        "meta": {"a": 1},
        "flag": True,
        "hits": 1,
    },
    {
        "name": "offset",
        "at": datetime(2026, 3, 1, 9, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5))),
        "meta": None,
        "flag": False,
        "hits": 2,
    },
    {"name": "nothing", "at": None, "meta": [1, "x"], "flag": None, "hits": 3},
]


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
    async with AsyncSession(engine) as session:
        yield session
    await engine.dispose()


async def _stored(session: AsyncSession, table: str) -> list[tuple[Any, ...]]:
    query = text(f"SELECT name, at, meta, flag, hits FROM {table} ORDER BY name")
    return [tuple(row) for row in (await session.execute(query)).all()]


async def test_rows_are_stored_as_sqlalchemy_stores_them(session: AsyncSession) -> None:
    await sql.insert_many(session, _ours, _ROWS)
    await session.execute(insert(_theirs), _ROWS)
    ours = await _stored(session, "ours")
    assert ours == await _stored(session, "theirs")
    # The text of an instant keeps its fraction digits, so that text order is time order.
    assert ("whole-second", "2026-03-01 09:30:00.000000") in [(r[0], r[1]) for r in ours]
    assert ("offset", "2026-03-01 14:30:00.000250") in [(r[0], r[1]) for r in ours]


async def test_returning_gives_the_inserted_rows_processed_and_skips_conflicts(
    session: AsyncSession,
) -> None:
    await sql.insert_many(session, _ours, _ROWS[:1])
    returned = await sql.insert_many(
        session,
        _ours,
        _ROWS,
        on_conflict=sql.ignore_conflicts,
        returning=(_ours.c.name, _ours.c.at, _ours.c.meta),
    )
    assert sorted(returned, key=lambda row: row[0]) == [
        ("nothing", None, [1, "x"]),
        ("offset", datetime(2026, 3, 1, 14, 30, 0, 250, tzinfo=UTC), None),
    ]
    ids = await session.execute(select(_ours.c.name, _ours.c.id).order_by(_ours.c.id))
    assert [name for name, _ in ids.all()] == ["whole-second", "offset", "nothing"]


def _add_hits(statement: Any) -> Any:
    table = statement.table
    return statement.on_conflict_do_update(
        index_elements=[table.c.name], set_={"hits": table.c.hits + 10}
    )


async def test_a_literal_in_the_conflict_clause_is_bound_too(session: AsyncSession) -> None:
    rows = [{"name": "a", "hits": 1}, {"name": "b", "hits": 1}]
    for _ in range(3):
        await sql.insert_many(session, _ours, rows, on_conflict=_add_hits)
    found = await session.execute(select(_ours.c.name, _ours.c.hits).order_by(_ours.c.name))
    assert found.all() == [("a", 21), ("b", 21)]


async def test_a_statement_is_compiled_once(session: AsyncSession) -> None:
    await sql.insert_many(session, _ours, [{"name": "first", "hits": 1}], on_conflict=_add_hits)
    compiled = sql._driver_insert.cache_info().currsize
    for number in range(5):
        await sql.insert_many(
            session, _ours, [{"name": f"n{number}", "hits": 1}], on_conflict=_add_hits
        )
    assert sql._driver_insert.cache_info().currsize == compiled


async def test_more_rows_than_one_statement_binds_are_split(session: AsyncSession) -> None:
    rows = [
        {"name": f"r{n}", "at": None, "meta": None, "flag": None, "hits": n} for n in range(7000)
    ]
    returned = await sql.insert_many(session, _ours, rows, returning=(_ours.c.hits,))
    assert sorted(hits for (hits,) in returned) == list(range(7000))  # 5 columns: 2 statements
