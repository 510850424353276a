"""The per-value visitor bitmaps and completion levels stay exact as visitors come and change."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from pyroaring import BitMap
from sqlalchemy import func, select
from sqlmodel import col

from datasaas.resolvers.goals import store_completion
from datasaas.storage import visitors as visitor_store
from datasaas.storage.dimensions import dimension_index
from datasaas.storage.engine import Database
from datasaas.storage.levels import count_completions_by
from datasaas.storage.models import GoalCompletion, Visitor
from tests.factories import make_site

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
DEVICES = ("mobile", "desktop", None)


async def naive_values(database: Database, site_id: str) -> dict[str | None, BitMap]:
    grouped: dict[str | None, BitMap] = defaultdict(BitMap)
    async with database.read() as session:
        rows = await session.execute(
            select(col(Visitor.device_type), col(Visitor.id)).where(col(Visitor.site_id) == site_id)
        )
        for value, key in rows.all():
            grouped[value].add(key)
    return dict(grouped)


async def indexed_values(database: Database, site_id: str) -> dict[str | None, BitMap]:
    async with database.read() as session:
        index = await dimension_index(session, site_id=site_id, dimension="device_type")
        return {value: keys.copy() for value, keys in index.values.items() if keys}


async def test_values_stay_exact_through_server_side_first_visitors_and_other_sites(
    database: Database,
) -> None:
    await make_site(database)
    await make_site(database, site_id="ds_other")
    rng = random.Random(12)
    uids: list[tuple[str, str]] = []
    for step in range(60):
        site = "ds_test" if rng.random() < 0.7 else "ds_other"
        action = rng.random()
        if action < 0.4 or not uids:  # a visitor first seen server-side: no attributes yet
            uid = f"v{step}"
            uids.append((site, uid))
            async with database.write() as session:
                await visitor_store.visitor_key(session, site_id=site, uid=uid, seen_at=NOW)
        elif action < 0.8:  # a first pageview for someone: attributes set once
            site, uid = rng.choice(uids)
            device = rng.choice(DEVICES)
            async with database.write() as session:
                key = await visitor_store.visitor_key(session, site_id=site, uid=uid, seen_at=NOW)
                await visitor_store.set_first_touches(
                    session, at=NOW, touches={key: {"device_type": device, "os": "iOS"}}
                )
        else:  # a rolled-back insert leaves an id that never commits (PostgreSQL burns it)
            try:
                async with database.write() as session:
                    await visitor_store.visitor_key(
                        session, site_id="ds_test", uid=f"gone{step}", seen_at=NOW
                    )
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
        if step % 4 == 0:
            assert await indexed_values(database, "ds_test") == await naive_values(
                database, "ds_test"
            )
    assert await indexed_values(database, "ds_test") == await naive_values(database, "ds_test")
    assert await indexed_values(database, "ds_other") == await naive_values(database, "ds_other")


async def test_a_visitor_committed_after_a_larger_id_is_still_found(database: Database) -> None:
    """A row whose id is below the largest one a read saw (a PostgreSQL transaction that took
    its sequence value first and committed last) is found by the next read: a hole."""
    await make_site(database)

    async def insert(key: int, device: str | None) -> None:
        async with database.write() as session:
            session.add(
                Visitor(
                    id=key,
                    site_id="ds_test",
                    uid=f"v{key}",
                    first_seen_at=NOW,
                    first_pageview_at=NOW,
                    device_type=device,
                )
            )

    await insert(1000, "mobile")
    assert await indexed_values(database, "ds_test") == await naive_values(database, "ds_test")
    await insert(990, "desktop")  # committed after the read that saw 1000
    await insert(995, None)
    assert await indexed_values(database, "ds_test") == await naive_values(database, "ds_test")
    await insert(1001, "mobile")
    assert await indexed_values(database, "ds_test") == {
        "mobile": BitMap([1000, 1001]),
        "desktop": BitMap([990]),
        None: BitMap([995]),
    }


async def naive_completions(
    database: Database, start: datetime, end: datetime, keys: BitMap
) -> dict[int, int]:
    async with database.read() as session:
        rows = await session.execute(
            select(col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id), func.count())
            .where(
                col(GoalCompletion.completed_at) >= start, col(GoalCompletion.completed_at) <= end
            )
            .group_by(col(GoalCompletion.goal_id), col(GoalCompletion.visitor_id))
        )
        counts: dict[int, int] = defaultdict(int)
        for goal, visitor, count in rows.all():
            if visitor in keys:
                counts[goal] += count
        return dict(counts)


async def test_completion_levels_match_the_definition_after_backdated_completions(
    database: Database,
) -> None:
    await make_site(database)
    rng = random.Random(5)
    base = datetime(2026, 3, 1, tzinfo=UTC)

    async def complete(n: int) -> None:
        moment = base + timedelta(minutes=rng.randrange(0, 19 * 24 * 60), seconds=rng.random())
        async with database.write() as session:
            await store_completion(
                session,
                site_id="ds_test",
                name=rng.choice(("signup", "buy")),
                uid=f"v{rng.randrange(12)}",
                url=None,
                metadata=None,
                at=moment,
            )

    for n in range(80):
        await complete(n)
    async with database.read() as session:
        goal_ids = [
            int(goal)
            for goal in (await session.execute(select(col(GoalCompletion.goal_id)).distinct()))
            .scalars()
            .all()
        ]
    keys = [BitMap(range(0, 100, 2)), BitMap(range(1, 100, 3))]
    for round_ in range(3):
        start = base + timedelta(days=rng.randrange(0, 5), minutes=rng.randrange(0, 600))
        end = start + timedelta(days=rng.randrange(1, 14), seconds=rng.randrange(0, 80_000))
        async with database.read() as session:
            found = await count_completions_by(
                session,
                site_id="ds_test",
                goal_ids=goal_ids,
                start=start,
                end=end,
                keys=keys,
                now=NOW,
            )
        assert found == [await naive_completions(database, start, end, k) for k in keys], round_
        for n in range(10):  # backdated completions land in cached periods
            await complete(n)
