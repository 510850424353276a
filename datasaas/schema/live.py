"""Live GraphQL: ``Query.realtime`` and the subscriptions of CONTRACT §14.

Subscriptions run over ``graphql-transport-ws`` on ``/graphql``; the key comes from the
``connection_init`` payload (``{"Authorization": "Bearer …"}``) or the upgrade request's header
and is checked like a query's (site, scope). It is looked up again every ``REAUTH_SECONDS``, so
a revoked key's subscriptions end within a minute with ``UNAUTHENTICATED``. Events come from the
worker's ``LiveHub``, after their write committed, in commit order per site.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Final

import strawberry
from strawberry import UNSET

from datasaas.errors import ServiceUnavailable
from datasaas.live.hub import LiveHub
from datasaas.resolvers import live as live_resolvers
from datasaas.resolvers import validation
from datasaas.schema.context import Context
from datasaas.schema.scalars import JSON
from datasaas.schema.types import Completion, Payment
from datasaas.storage.outbox import StoredEvent
from datasaas.storage.payments import LedgerRow

REAUTH_SECONDS: Final = 30.0
REALTIME_SECONDS: Final = 1.0


@strawberry.type(description="Visitors with any event in the last `windowSeconds` seconds.")
class Realtime:
    """The realtime visitor count."""

    visitors: int
    window_seconds: int

    @classmethod
    def from_value(cls, value: live_resolvers.Realtime) -> Realtime:
        """Build from the resolver's value."""
        return cls(visitors=value.visitors, window_seconds=value.window_seconds)


def _hub(info: strawberry.Info[Context]) -> LiveHub:
    request = info.context.request
    assert request is not None
    hub: LiveHub = request.app.state.live.hub
    return hub


async def resolve_realtime(info: strawberry.Info[Context], site_id: str) -> Realtime:
    """Distinct visitors with a pageview, heartbeat, goal or payment in the last 90 seconds."""
    await info.context.authorize(site_id)
    return Realtime.from_value(await _hub(info).realtime(site_id))


class _Guard:
    """Re-checks the subscription's key every ``REAUTH_SECONDS``."""

    def __init__(self, context: Context, site_id: str) -> None:
        self.context, self.site_id = context, site_id
        self.checked = time.monotonic()

    def remaining(self) -> float:
        return max(0.0, REAUTH_SECONDS - (time.monotonic() - self.checked))

    async def check(self) -> None:
        if self.remaining() <= 0:
            principal = await self.context.reauthenticate()
            principal.authorize(self.site_id)
            self.checked = time.monotonic()


async def _events(
    info: strawberry.Info[Context], site_id: str, types: tuple[str, ...]
) -> AsyncGenerator[StoredEvent, None]:
    await info.context.authorize(site_id)
    guard = _Guard(info.context, site_id)
    async with _hub(info).subscribe(site_id) as queue:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=guard.remaining() or 0.001)
            except TimeoutError:
                await guard.check()
                continue
            await guard.check()
            if event is None:
                raise ServiceUnavailable(
                    "The live feed ended (server stopping or subscriber too slow)."
                )
            if event.type in types:
                yield event


def completion_from(payload: dict[str, object]) -> Completion:
    """A ``goal.completed`` outbox payload as the ``Completion`` type."""
    metadata = payload.get("metadata")
    at = payload["completed_at"]
    assert isinstance(at, str)

    def text(name: str) -> str | None:
        value = payload.get(name)
        return value if isinstance(value, str) else None

    return Completion(
        visitor_id=str(payload["visitor_id"]),
        completed_at=datetime.fromisoformat(at),
        url=text("url"),
        metadata=JSON(metadata) if isinstance(metadata, dict) else None,
        source=text("source"),
        country=text("country"),
        city=text("city"),
        browser=text("browser"),
        os=text("os"),
        device_type=text("device_type"),
    )


async def resolve_completion_created(
    info: strawberry.Info[Context], site_id: str, goal: str | None = UNSET
) -> AsyncGenerator[Completion, None]:
    """Each goal completion of the site as it commits (only ``goal``'s, when given)."""
    wanted = validation.normalize_goal_name(goal) if goal else None
    async for event in _events(info, site_id, (live_resolvers.GOAL_COMPLETED,)):
        if wanted is None or event.payload.get("goal_name") == wanted:
            yield completion_from(event.payload)


def payment_from(payload: dict[str, object]) -> Payment:
    """A payment outbox payload as the ``Payment`` type."""
    row: LedgerRow = live_resolvers.ledger_row(dict(payload))
    return Payment.from_row(row)


async def resolve_payment_created(
    info: strawberry.Info[Context], site_id: str
) -> AsyncGenerator[Payment, None]:
    """Each payment of the site (refunds included) as it commits."""
    types = (live_resolvers.PAYMENT_CREATED, live_resolvers.PAYMENT_REFUNDED)
    async for event in _events(info, site_id, types):
        yield payment_from(event.payload)


async def resolve_realtime_visitors(
    info: strawberry.Info[Context], site_id: str
) -> AsyncGenerator[Realtime, None]:
    """The realtime count now, then whenever it changes (checked once a second)."""
    await info.context.authorize(site_id)
    guard = _Guard(info.context, site_id)
    hub = _hub(info)
    last: live_resolvers.Realtime | None = None
    while True:
        value = await hub.realtime(site_id)
        if value != last:
            last = value
            yield Realtime.from_value(value)
        await asyncio.sleep(REALTIME_SECONDS)
        await guard.check()


@strawberry.type
class Subscription:
    """Pushed as it happens, after commit, in commit order per site."""

    completion_created = strawberry.subscription(
        resolver=resolve_completion_created,
        description="Goal completions of the site (of one goal with `goal`), as they commit.",
    )
    payment_created = strawberry.subscription(
        resolver=resolve_payment_created,
        description="Payments of the site, refunds included, as they commit.",
    )
    realtime_visitors = strawberry.subscription(
        resolver=resolve_realtime_visitors,
        description="The realtime visitor count: now, then on change, at most once a second.",
    )
