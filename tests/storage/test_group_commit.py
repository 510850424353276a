"""Group commit: writes that share a transaction commit together and fail alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.errors import Conflict
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers.goals import GoalIn, NewCompletion
from datasaas.storage import group_commit
from datasaas.storage.engine import Database
from datasaas.storage.models import GoalCompletion, HourVersion, Visitor
from tests.factories import make_site


async def _count(database: Database, column: object) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count(column))) or 0)


def _commits(database: Database) -> list[int]:
    commits: list[int] = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


async def test_concurrent_goals_share_one_commit_and_are_all_stored(database: Database) -> None:
    await make_site(database)
    commits = _commits(database)
    now = datetime.now(UTC)
    completions = [
        goal_resolvers.validate_goal(
            "ds_test", GoalIn(name="signup", visitor_id=f"v{n % 7}"), now=now
        )
        for n in range(40)
    ]
    results = await asyncio.gather(
        *(database.submit_batched(goal_resolvers.record_goals, c) for c in completions)
    )
    assert [r.goal_name for r in results] == ["signup"] * 40
    assert await _count(database, col(GoalCompletion.id)) == 40
    assert await _count(database, col(Visitor.id)) == 7
    assert len(commits) < 40  # gathered: far fewer transactions than writes


async def test_a_failing_write_fails_alone_and_leaves_nothing(database: Database) -> None:
    await make_site(database)
    past = datetime.now(UTC) - timedelta(days=3)

    def completion(uid: str) -> NewCompletion:
        return NewCompletion("ds_test", "signup", uid, None, None, past)

    async def good(session: AsyncSession, uid: str) -> str:
        await goal_resolvers.store_completions(session, [completion(uid)])
        return uid

    async def bad(session: AsyncSession) -> None:
        # Writes (a completion, an hour bump, a new visitor id), then refuses.
        await goal_resolvers.store_completions(session, [completion("doomed")])
        raise Conflict("no")

    outcomes = await asyncio.gather(
        database.submit(lambda s: good(s, "a")),
        database.submit(bad),
        database.submit(lambda s: good(s, "b")),
        return_exceptions=True,
    )
    assert outcomes[0] == "a"
    assert outcomes[2] == "b"
    assert isinstance(outcomes[1], Conflict)
    async with database.read() as session:
        uids = set((await session.scalars(select(col(Visitor.uid)))).all())
        versions = (await session.scalars(select(col(HourVersion.version)))).all()
    assert uids == {"a", "b"}
    assert await _count(database, col(GoalCompletion.id)) == 2
    # The rolled-back write's hour bump did not stop the neighbours' own bump.
    assert versions
    assert all(v >= 1 for v in versions)
    # Nor did it leave its rolled-back visitor id in the id cache.
    assert database.ids.get(("visitor", "ds_test", "doomed")) is None
    assert database.ids.get(("visitor", "ds_test", "a")) is not None


async def test_a_set_based_batch_that_raises_is_retried_one_by_one(database: Database) -> None:
    await make_site(database)
    calls: list[int] = []

    async def batch(session: AsyncSession, payloads: Sequence[str]) -> list[str]:
        calls.append(len(payloads))
        now = datetime.now(UTC)
        await goal_resolvers.store_completions(
            session, [NewCompletion("ds_test", "signup", p, None, None, now) for p in payloads]
        )
        if "bad" in payloads:  # after writing: the failed attempt must leave nothing behind
            raise Conflict("bad payload")
        return list(payloads)

    outcomes = await asyncio.gather(
        *(database.submit_batched(batch, p) for p in ["x", "bad", "y", "z"]),
        return_exceptions=True,
    )
    assert outcomes[0] == "x"
    assert outcomes[2:] == ["y", "z"]
    assert isinstance(outcomes[1], Conflict)
    assert await _count(database, col(GoalCompletion.id)) == 3
    assert calls[0] > 1  # tried together first
    async with database.read() as session:
        uids = set((await session.scalars(select(col(Visitor.uid)))).all())
    assert uids == {"x", "y", "z"}
    assert database.ids.get(("visitor", "ds_test", "bad")) is None


async def test_a_lone_write_needs_no_savepoint_and_fails_whole(database: Database) -> None:
    await make_site(database)
    statements: list[str] = []
    event.listen(
        database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_rest: statements.append(sql),
    )

    async def doomed(session: AsyncSession) -> None:
        await goal_resolvers.store_completions(
            session, [NewCompletion("ds_test", "signup", "doomed", None, None, datetime.now(UTC))]
        )
        raise Conflict("no")

    with pytest.raises(Conflict):
        await database.submit(doomed)
    await database.submit_batched(
        goal_resolvers.record_goals,
        NewCompletion("ds_test", "signup", "kept", None, None, datetime.now(UTC)),
    )
    assert not [sql for sql in statements if "SAVEPOINT" in sql.upper()]
    async with database.read() as session:
        uids = set((await session.scalars(select(col(Visitor.uid)))).all())
    assert uids == {"kept"}
    assert await _count(database, col(GoalCompletion.id)) == 1
    assert database.ids.get(("visitor", "ds_test", "doomed")) is None


async def test_a_batch_that_cannot_commit_acknowledges_nobody(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_site(database)

    class Down(Exception):
        pass

    def refuse(_conn: object) -> None:
        raise Down("the disk is full")

    event.listen(database.engine.sync_engine, "commit", refuse)
    now = datetime.now(UTC)
    outcomes = await asyncio.gather(
        *(
            database.submit_batched(
                goal_resolvers.record_goals,
                NewCompletion("ds_test", "signup", f"v{n}", None, None, now),
            )
            for n in range(5)
        ),
        return_exceptions=True,
    )
    event.remove(database.engine.sync_engine, "commit", refuse)
    assert all(isinstance(o, Exception) for o in outcomes)
    assert await _count(database, col(GoalCompletion.id)) == 0


async def test_a_due_batch_waits_for_the_writes_announced_before_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load, the writers just answered send their next writes at once; the first of
    # them to be queued must not pay a commit of its own while the rest are still parsed.
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 30.0)  # only the arrival ends the wait
    await make_site(database)
    commits = _commits(database)
    now = datetime.now(UTC)
    parsed = asyncio.Event()

    async def announced(uid: str) -> goal_resolvers.GoalResult:
        with database.arriving():
            await parsed.wait()  # still being read and authenticated
            return await database.submit_batched(
                goal_resolvers.record_goals,
                NewCompletion("ds_test", "signup", uid, None, None, now),
            )

    late = asyncio.create_task(announced("late"))
    await asyncio.sleep(0)
    first = asyncio.create_task(
        database.submit_batched(
            goal_resolvers.record_goals,
            NewCompletion("ds_test", "signup", "first", None, None, now),
        )
    )
    for _ in range(20):  # the writer takes ``first`` and waits for the announced write
        await asyncio.sleep(0)
    assert not first.done()
    parsed.set()
    await asyncio.gather(first, late)
    assert len(commits) == 1
    assert await _count(database, col(GoalCompletion.id)) == 2


async def test_an_announced_request_that_never_writes_holds_a_batch_only_briefly(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 0.05)
    await make_site(database)
    stuck = asyncio.Event()

    async def never_writes() -> None:
        with database.arriving():
            await stuck.wait()

    hanging = asyncio.create_task(never_writes())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):  # bounded by GATHER_SECONDS, not by the stuck request
        await database.submit_batched(
            goal_resolvers.record_goals,
            NewCompletion("ds_test", "signup", "v", None, None, datetime.now(UTC)),
        )
    stuck.set()
    await hanging
    assert await _count(database, col(GoalCompletion.id)) == 1
