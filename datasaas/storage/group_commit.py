"""Group commit: concurrent writes of one process share a transaction and its commit.

A request hands its write to :meth:`GroupCommit.submit` as a function of a session. One writer
task per process takes every write that is waiting, runs them in one transaction, commits, and
only then answers each caller, so SQLite's single-writer lock and PostgreSQL's commit (its WAL
flush) are paid once per batch instead of once per request, and bookkeeping kept per session
(hour-version bumps, outbox signals) is done once per batch.

Isolation inside a batch: each write runs in its own ``SAVEPOINT``. A write that raises (bad
input found late, a conflict, a refund over its ceiling) has its savepoint rolled back and gets
its exception; its neighbours carry on and commit. Writes of one *kind* that know how to run
together (``submit(..., batch=runner)``) are first tried as one set-based call in one
savepoint; if that raises, each is retried alone, so one bad write never fails the others.
When a transaction holds one write, or one set-based group, and nothing else (the common case
under a steady load of one kind), it runs without a savepoint: rolling the whole transaction
back takes nothing else with it, and a failed group is then run again one write at a time.

Every caller is answered only after the commit that holds its write. If the transaction cannot
commit (database down, disk full), every write of the batch gets that error and none is
acknowledged. On PostgreSQL a batch chosen as a deadlock or serialization victim (two workers'
batches locking the same rows in different orders) is run again, up to ``RETRIES`` times.
A caller that gives up (client gone, request cancelled) before its write started is skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger("datasaas")

T = TypeVar("T")
P = TypeVar("P")

MAX_BATCH: Final = 256
"""Writes per transaction at most (bounds a batch's latency and its statement sizes)."""
RETRIES: Final = 3
GATHER_SECONDS: Final = 0.02
"""At most this long, a batch waits for the writes that were on their way when it was due."""
GATHER_STEP_SECONDS: Final = 0.0005
_RETRYABLE_SQLSTATES: Final = frozenset({"40P01", "40001"})  # deadlock, serialization failure

Work = Callable[[AsyncSession], Awaitable[Any]]
BatchRunner = Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[Any]]]
"""Runs several payloads of one kind set-based; returns one result per payload, in order."""


@dataclass(slots=True)
class _Job:
    work: Work
    payload: Any = None
    batch: BatchRunner | None = None
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    outcome: tuple[bool, Any] | None = None
    """(succeeded, result or exception) once run in the current attempt."""


def _drain(queue: asyncio.Queue[_Job], jobs: list[_Job]) -> None:
    while len(jobs) < MAX_BATCH and not queue.empty():
        jobs.append(queue.get_nowait())


_ARRIVAL: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "datasaas_write_arrival", default=None
)
"""The number of the current request's announcement (``GroupCommit.arriving``), if any."""


def _retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return state in _RETRYABLE_SQLSTATES


class _GroupFailed(Exception):
    """A set-based group that was the whole transaction raised: run its writes one by one."""


def _units(jobs: list[_Job], *, alone: bool) -> list[list[_Job]]:
    """The jobs in arrival order, those of one set-based ``batch`` gathered into one unit
    (where the first of them arrived); with ``alone``, every job a unit of its own."""
    if alone:
        return [[job] for job in jobs]
    groups: dict[int, list[_Job]] = {}
    units: list[list[_Job]] = []
    for job in jobs:
        if job.batch is None:
            units.append([job])
            continue
        key = id(job.batch)
        if key not in groups:
            groups[key] = []
            units.append(groups[key])
        groups[key].append(job)
    return units


def _snapshot(session: AsyncSession) -> dict[Any, Any]:
    # Session-scoped bookkeeping (sets and dicts in ``info``) as it was before a savepoint, so
    # that a rolled-back write leaves no trace in it (a bump it did, an id it learnt).
    return {
        key: value.copy() if isinstance(value, (set, dict)) else value
        for key, value in session.info.items()
    }


def _restore(session: AsyncSession, saved: dict[Any, Any]) -> None:
    session.info.clear()
    session.info.update(saved)


class GroupCommit:
    """The process's writer task and its queue, for one database."""

    def __init__(self, begin: Callable[[], AbstractAsyncContextManager[AsyncSession]]) -> None:
        self._begin = begin
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrivals = itertools.count()
        self._on_their_way: dict[int, None] = {}
        """Numbers of the writes announced and not yet queued, oldest first (an ordered set)."""

    @property
    def on_their_way(self) -> int:
        """Writes announced (``arriving``) and not yet queued."""
        return len(self._on_their_way)

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a write on its way (a request still being read, authenticated, validated).

        A batch that is due waits (at most ``GATHER_SECONDS``) for the writes announced before
        it was due: under load, the writers just answered send their next writes all at once,
        and without the wait the first of them would pay a commit of their own while the rest
        are still being parsed. A request that writes nothing just ends its announcement."""
        number = next(self._arrivals)
        self._on_their_way[number] = None
        token = _ARRIVAL.set(number)
        try:
            yield
        finally:
            _ARRIVAL.reset(token)
            self._on_their_way.pop(number, None)

    async def submit(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in the next shared transaction; return its result once committed."""
        return await self._enqueue(_Job(work))  # type: ignore[no-any-return]

    async def submit_batched(
        self,
        batch: Callable[[AsyncSession, Sequence[P]], Awaitable[Sequence[T]]],
        payload: P,
    ) -> T:
        """Like ``submit``, for a payload that ``batch`` can write together with the other
        payloads of the same ``batch`` waiting at that moment (set-based)."""

        async def alone(session: AsyncSession) -> T:
            (result,) = await batch(session, [payload])
            return result

        return await self._enqueue(_Job(alone, payload, batch))  # type: ignore[no-any-return]

    async def _enqueue(self, job: _Job) -> Any:
        self._ensure_writer()
        assert self._queue is not None
        self._queue.put_nowait(job)
        arrival = _ARRIVAL.get()
        if arrival is not None:
            self._on_their_way.pop(arrival, None)
        return await job.future

    def _ensure_writer(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            self._loop, self._queue, self._task = loop, asyncio.Queue(), None
        if self._task is None or self._task.done():  # first use, or the writer was cancelled
            # A context of its own: the writer outlives the request that happened to start it.
            self._task = loop.create_task(
                self._run(self._queue), name="datasaas-group-commit", context=contextvars.Context()
            )

    async def stop(self) -> None:
        """Finish the writes already queued, then stop the writer task."""
        task, queue = self._task, self._queue
        if task is None or task.done() or queue is None:
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # a writer of an earlier event loop: that loop is gone with it
        await queue.join()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def _run(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            jobs = [await queue.get()]
            _drain(queue, jobs)
            if self._on_their_way:
                await self._gather(queue, jobs)
            try:
                await self._commit([job for job in jobs if not job.future.done()])
            finally:
                for _ in jobs:
                    queue.task_done()

    async def _gather(self, queue: asyncio.Queue[_Job], jobs: list[_Job]) -> None:
        """Wait until every write announced before now is queued (or gave up), or until
        ``GATHER_SECONDS`` passed, whichever comes first."""
        loop = asyncio.get_running_loop()
        # The writers of the last batch answer first (their continuations are ready to run).
        await asyncio.sleep(0)
        _drain(queue, jobs)
        due = next(self._arrivals)
        deadline = loop.time() + GATHER_SECONDS
        while self._on_their_way and len(jobs) < MAX_BATCH:
            if next(iter(self._on_their_way)) > due or loop.time() >= deadline:
                return
            await asyncio.sleep(GATHER_STEP_SECONDS)
            _drain(queue, jobs)

    async def _commit(self, jobs: list[_Job]) -> None:
        attempt = 0
        alone = False
        while jobs:
            attempt += 1
            for job in jobs:
                job.outcome = None
            units = _units(jobs, alone=alone)
            try:
                async with self._begin() as session:
                    if len(units) == 1:
                        await self._only(session, units[0])
                    else:
                        for unit in units:
                            if len(unit) > 1 and await self._together(session, unit):
                                continue
                            for job in unit:
                                await self._alone(session, job)
            except _GroupFailed:  # a lone group failed outside a savepoint: each one alone now
                alone = True
                continue
            except Exception as exc:  # the batch did not commit: nobody is acknowledged
                if attempt <= RETRIES and _retryable(exc):
                    logger.info("group commit: batch of %d retried after %s", len(jobs), exc)
                    continue
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return
            except BaseException as exc:  # cancelled while writing: answer, then stop
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                raise
            for job in jobs:
                assert job.outcome is not None
                succeeded, value = job.outcome
                if job.future.done():
                    continue
                if succeeded:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            return

    async def _only(self, session: AsyncSession, unit: list[_Job]) -> None:
        """The transaction's only write (or only set-based group), without a savepoint: if
        it raises, the whole transaction rolls back, which takes nothing else with it."""
        if len(unit) == 1:
            job = unit[0]
            job.outcome = (True, await job.work(session))  # its exception is its answer
            return
        batch = unit[0].batch
        assert batch is not None
        try:
            results = await batch(session, [job.payload for job in unit])
        except Exception as exc:
            if _retryable(exc):
                raise
            raise _GroupFailed from exc
        for job, result in zip(unit, results, strict=True):
            job.outcome = (True, result)

    async def _together(self, session: AsyncSession, group: list[_Job]) -> bool:
        batch = group[0].batch
        assert batch is not None
        saved = _snapshot(session)
        try:
            async with session.begin_nested():
                results = await batch(session, [job.payload for job in group])
        except Exception:
            _restore(session, saved)
            return False  # each one alone, so that the one that failed fails alone
        for job, result in zip(group, results, strict=True):
            job.outcome = (True, result)
        return True

    async def _alone(self, session: AsyncSession, job: _Job) -> None:
        saved = _snapshot(session)
        try:
            async with session.begin_nested():
                job.outcome = (True, await job.work(session))
        except Exception as exc:
            if _retryable(exc):
                raise  # the whole transaction is the victim: run the batch again
            _restore(session, saved)
            job.outcome = (False, exc)
