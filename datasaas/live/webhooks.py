"""Outbound webhooks: expanding outbox events into deliveries and sending them, signed.

Every worker runs one ``WebhookDispatcher``. It wakes when this process commits an event (and
at least once a second), then

1. claims outbox events not yet expanded and inserts one ``webhook_delivery`` per endpoint of
   the site that wants the event type, in one transaction (``SKIP LOCKED`` on PostgreSQL, so
   workers share the work);
2. leases due deliveries for 60 s, POSTs them (10 s timeout) with Standard Webhooks headers,
   and records each attempt: a 2xx delivers, anything else is retried with exponential backoff
   and full jitter (first retry 2.5-5 s later, doubling to at most an hour) until 24 h after
   the event, then the delivery is ``failed``.

A process killed mid-send leaves the lease to run out; the delivery is then due again, with the
same ``webhook-id`` (the event's id), so the receiver can drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import simplejson
from standardwebhooks import Webhook

from datasaas.live.render import webhook_body
from datasaas.live.tasks import cancel_and_wait, wait_or_timeout
from datasaas.storage import outbox as outbox_store
from datasaas.storage import webhooks as webhook_store
from datasaas.storage.engine import Database, background_context
from datasaas.storage.live_models import WebhookAttempt, WebhookDelivery

logger = logging.getLogger("datasaas.webhooks")

TIMEOUT_SECONDS: Final = 10.0
LEASE_SECONDS: Final = 60
RETRY_FOR: Final = timedelta(hours=24)
FIRST_RETRY_SECONDS: Final = 5.0
MAX_RETRY_SECONDS: Final = 3600.0
POLL_SECONDS: Final = 1.0
GATHER_SECONDS: Final = 0.1
"""After a commit wakes the dispatcher, it waits this long so that one round expands the events
of every commit meanwhile: under write load, a round per commit cost each batch of writes two
more transactions (and SQLite's write lock twice)."""
CONCURRENCY: Final = 16
CLAIM_LIMIT: Final = 500
"""Events expanded per transaction."""
OUTBOX_KEEP: Final = timedelta(days=1)
HOUSEKEEPING_SECONDS: Final = 60.0
USER_AGENT: Final = "DataSaaS-Webhooks/1"


def retry_delay(failures: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``failures`` failed ones (jittered, 50-100 %)."""
    base = min(FIRST_RETRY_SECONDS * float(2 ** max(failures - 1, 0)), MAX_RETRY_SECONDS)
    jitter: float = (rng or random).random()
    return base * (0.5 + 0.5 * jitter)


def signed_request(
    *, secret: str, webhook_id: str, timestamp: datetime, body: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """The JSON body and the Standard Webhooks headers of one attempt."""
    text = simplejson.dumps(body, use_decimal=True, ensure_ascii=False, separators=(",", ":"))
    signature = Webhook(secret).sign(webhook_id, timestamp, text)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
    return text.encode(), headers


class WebhookDispatcher:
    """Expands and sends webhook deliveries for this worker."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._semaphore = asyncio.Semaphore(CONCURRENCY)
        self._housekept = 0.0

    async def start(self) -> None:
        """Start the background loop."""
        self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), context=background_context())

    async def stop(self) -> None:
        """Stop sending; deliveries in flight are retried by the next process (lease)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        for task in list(self._sending):
            task.cancel()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        waiter = self.database.outbox_signal.waiter()
        try:
            while True:
                waiter.clear()
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # an outage: try again on the next tick
                    logger.warning("webhooks: dispatch step failed: %s", exc)
                await wait_or_timeout(waiter, POLL_SECONDS)
                await asyncio.sleep(GATHER_SECONDS)
        finally:
            self.database.outbox_signal.discard(waiter)

    async def step(self) -> None:
        """One round: expand new events, send what is due, now and then prune."""
        now = datetime.now(UTC)
        # A read first: an idle worker must not take the write lock twice a second for nothing.
        async with self.database.read() as session:
            expand = await outbox_store.has_unfanned(session)
            send = await webhook_store.has_due(session, now=now)
        if expand and await self._expand(now):
            send = True  # the expansion added deliveries due now
        due: list[webhook_store.DueDelivery] = []
        if send:
            async with self.database.write() as session:
                due = await webhook_store.claim_due(
                    session, now=now, lease_until=now + timedelta(seconds=LEASE_SECONDS)
                )
        for delivery in due:
            task = asyncio.create_task(self._send(delivery))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        if time.monotonic() - self._housekept > HOUSEKEEPING_SECONDS:
            self._housekept = time.monotonic()
            async with self.database.write() as session:
                await outbox_store.prune(session, before=now - OUTBOX_KEEP)
                await outbox_store.prune_visitors(session, before=now - timedelta(minutes=5))

    async def _expand(self, now: datetime) -> bool:
        """Expand every unfanned event into its deliveries; whether any delivery was added."""
        added = False
        while True:
            async with self.database.write() as session:
                events = await outbox_store.claim_unfanned(session, now=now, limit=CLAIM_LIMIT)
                if not events:
                    return added
                endpoints = await webhook_store.endpoints_for_sites(
                    session, [event.site_id for event in events]
                )
                rows = [
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        outbox_id=event.id,
                        status=webhook_store.PENDING,
                        created_at=event.created_at,
                        next_attempt_at=now,
                    )
                    for event in events
                    for endpoint in endpoints
                    if endpoint.site_id == event.site_id
                    and event.type in endpoint.events.split(",")
                ]
                if rows:
                    await webhook_store.add_deliveries(session, rows)
                    added = True
            if len(events) < CLAIM_LIMIT:  # that was all of them
                return added

    async def _send(self, delivery: webhook_store.DueDelivery) -> None:
        assert self._client is not None
        async with self._semaphore:
            attempted_at = datetime.now(UTC)
            body, headers = signed_request(
                secret=delivery.secret,
                webhook_id=delivery.event.event_id,
                timestamp=attempted_at,
                body=webhook_body(delivery.event),
            )
            started = time.monotonic()
            status_code: int | None = None
            error: str | None = None
            try:
                response = await self._client.post(delivery.url, content=body, headers=headers)
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}"
            except httpx.TimeoutException:
                error = f"timed out after {TIMEOUT_SECONDS:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            duration_ms = int((time.monotonic() - started) * 1000)
        failures = delivery.attempts + 1
        next_at: datetime | None = None
        if error is None:
            status = webhook_store.DELIVERED
        else:
            next_at = datetime.now(UTC) + timedelta(seconds=retry_delay(failures))
            expired = next_at - delivery.created_at > RETRY_FOR
            status = webhook_store.FAILED if expired else webhook_store.PENDING
        attempt = WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
        )
        try:
            async with self.database.write() as session:
                await webhook_store.record_attempt(
                    session,
                    delivery_id=delivery.id,
                    attempt=attempt,
                    status=status,
                    next_attempt_at=next_at,
                )
        except Exception as exc:  # the lease runs out and the delivery is retried
            logger.warning(
                "webhooks: recording attempt of delivery %s failed: %s", delivery.id, exc
            )
