"""The live hub: one per worker, fanning committed outbox events out to this worker's subscribers.

Where events come from (CONTRACT §14):

- **PostgreSQL**: ``LISTEN datasaas_outbox`` on a dedicated asyncpg connection. The writer's
  ``pg_notify`` is part of its transaction, so PostgreSQL delivers it only after the commit,
  never for a rollback, in commit order, to every worker on every host.
- **SQLite**: writes are serialised, so outbox ids are in commit order; the hub reads the rows
  after the last id it has seen whenever this process commits one (in-process signal) or, with
  ``DATASAAS_REDIS_URL``, whenever any worker announces one on Redis pub/sub; a one-second poll
  catches anything a lost message would otherwise delay.

Subscribers get ``StoredEvent`` values through bounded queues; a subscriber that falls 1,000
events behind is ended rather than allowed to grow memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg
from sqlalchemy.engine import make_url

from datasaas.live.tasks import cancel_and_wait, wait_or_timeout
from datasaas.resolvers import live as live_resolvers
from datasaas.storage import outbox as outbox_store
from datasaas.storage.engine import Database, background_context
from datasaas.storage.outbox import CHANNEL, StoredEvent

logger = logging.getLogger("datasaas.live")

QUEUE_SIZE: Final = 1000
POLL_SECONDS: Final = 1.0
REALTIME_CACHE_SECONDS: Final = 1.0
GATHER_SECONDS: Final = 0.02
"""On SQLite, after a commit wakes the tail, it waits this long so that one read of the outbox
takes the events of every commit meanwhile (a read per commit, under write load)."""


class SubscriberOverflow(Exception):
    """A subscriber fell too far behind and was ended."""


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def offer(self, event: StoredEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as a plain asyncpg DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class LiveHub:
    """Subscriptions to a site's committed events, on this worker."""

    def __init__(self, database: Database, *, redis_url: str | None = None) -> None:
        self.database = database
        self.redis_url = redis_url
        self._subscribers: defaultdict[str, set[_Subscriber]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_id = 0
        self._ready = asyncio.Event()
        self._realtime: dict[str, tuple[float, live_resolvers.Realtime]] = {}
        self._realtime_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def mode(self) -> str:
        """``postgres``, ``redis`` or ``local``: how this hub hears of other workers' commits."""
        if not self.database.is_sqlite:
            return "postgres"
        return "redis" if self.redis_url else "local"

    async def start(self) -> None:
        """Start listening (returns once the listener is in place)."""
        if self.mode == "postgres":
            self._tasks.append(
                asyncio.create_task(self._listen_postgres(), context=background_context())
            )
        else:
            async with self.database.read() as session:
                self._last_id = await outbox_store.last_id(session)
            self._tasks.append(asyncio.create_task(self._tail(), context=background_context()))
            if self.mode == "redis":
                self._tasks.append(asyncio.create_task(self._redis(), context=background_context()))
            self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        """Stop listening and end every subscription."""
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                with contextlib.suppress(asyncio.QueueFull):
                    subscriber.queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self, site_id: str) -> AsyncIterator[asyncio.Queue[StoredEvent | None]]:
        """A queue of the site's events committed from now on (``None`` = the hub stopped)."""
        subscriber = _Subscriber()
        self._subscribers[site_id].add(subscriber)
        try:
            yield subscriber.queue
        finally:
            self._subscribers[site_id].discard(subscriber)
            if not self._subscribers[site_id]:
                del self._subscribers[site_id]

    def publish(self, event: StoredEvent) -> None:
        """Hand an event to this worker's subscribers of its site."""
        for subscriber in list(self._subscribers.get(event.site_id, ())):
            subscriber.offer(event)

    async def realtime(self, site_id: str) -> live_resolvers.Realtime:
        """The realtime count, computed at most once a second per site and worker."""
        async with self._realtime_locks[site_id]:
            cached = self._realtime.get(site_id)
            if cached is not None and time.monotonic() - cached[0] < REALTIME_CACHE_SECONDS:
                return cached[1]
            async with self.database.read() as session:
                value = await live_resolvers.realtime(session, site_id=site_id)
            self._realtime[site_id] = (time.monotonic(), value)
            return value

    # --- SQLite: tail the outbox ---------------------------------------------------------------

    async def _tail(self) -> None:
        waiter = self.database.outbox_signal.waiter()
        try:
            while True:
                await wait_or_timeout(waiter, POLL_SECONDS)
                await asyncio.sleep(GATHER_SECONDS)
                waiter.clear()
                try:
                    await self._read_new()
                except Exception as exc:  # the database may be briefly unavailable
                    logger.warning("live hub: reading the outbox failed: %s", exc)
        finally:
            self.database.outbox_signal.discard(waiter)

    async def _read_new(self) -> None:
        while True:
            async with self.database.read() as session:
                if not self._subscribers:  # nobody to hand them to: only move past them
                    self._last_id = max(self._last_id, await outbox_store.last_id(session))
                    return
                events = await outbox_store.events_after(session, after=self._last_id)
            for event in events:
                self._last_id = event.id
                self.publish(event)
            if len(events) < 500:
                return

    async def _redis(self) -> None:
        import redis.asyncio as redis

        assert self.redis_url is not None
        waiter = self.database.outbox_signal.waiter()
        client = redis.from_url(self.redis_url)

        async def announce() -> None:
            while True:
                await waiter.wait()
                waiter.clear()
                try:
                    await client.publish(CHANNEL, "1")
                except Exception as exc:
                    logger.warning("live hub: Redis publish failed: %s", exc)

        announcer = asyncio.create_task(announce())
        try:
            while True:
                try:
                    async with client.pubsub() as pubsub:
                        await pubsub.subscribe(CHANNEL)
                        async for message in pubsub.listen():
                            if message.get("type") == "message":
                                await self._read_new()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("live hub: Redis subscription lost (%s); retrying", exc)
                    await asyncio.sleep(1)
        finally:
            announcer.cancel()
            self.database.outbox_signal.discard(waiter)
            await client.aclose()

    # --- PostgreSQL: LISTEN/NOTIFY -------------------------------------------------------------

    async def _listen_postgres(self) -> None:
        inbox: asyncio.Queue[str] = asyncio.Queue()

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            inbox.put_nowait(payload)

        while True:
            connection = None
            try:
                connection = await asyncpg.connect(asyncpg_dsn(self.database.url), timeout=10)
                await connection.add_listener(CHANNEL, on_notify)
                self._ready.set()
                while not connection.is_closed():
                    try:
                        payload = await asyncio.wait_for(inbox.get(), timeout=5)
                    except TimeoutError:
                        await connection.execute("SELECT 1")  # notices a dead connection
                        continue
                    await self._deliver_notification(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("live hub: LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)

    async def _deliver_notification(self, payload: str) -> None:
        data = json.loads(payload)
        if "event_id" in data:
            self.publish(StoredEvent.from_wire(data))
            return
        async with self.database.read() as session:
            found = await outbox_store.get_events(session, [int(data["id"])])
        for event in found.values():
            self.publish(event)
