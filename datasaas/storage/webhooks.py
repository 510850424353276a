"""Outbound webhooks: endpoints, deliveries with their retry state, and the attempt log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_

from datasaas.storage.live_models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from datasaas.storage.outbox import StoredEvent
from datasaas.storage.sql import dialect_name

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


async def add_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Insert an endpoint."""
    session.add(endpoint)
    await session.flush()


async def list_endpoints(session: AsyncSession, *, site_id: str | None) -> list[WebhookEndpoint]:
    """Endpoints of a site (or of every site), oldest first."""
    query = select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at))
    if site_id is not None:
        query = query.where(col(WebhookEndpoint.site_id) == site_id)
    return list(await session.scalars(query))


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    """One endpoint by id."""
    return await session.get(WebhookEndpoint, endpoint_id)


async def remove_endpoint(session: AsyncSession, endpoint_id: str) -> bool:
    """Delete an endpoint and its deliveries; False when it does not exist."""
    result = await session.execute(
        delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def endpoints_for_sites(
    session: AsyncSession, site_ids: Sequence[str]
) -> list[WebhookEndpoint]:
    """Every endpoint of the given sites."""
    if not site_ids:
        return []
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.site_id).in_(set(site_ids)))
    return list(await session.scalars(query))


async def add_deliveries(session: AsyncSession, rows: Sequence[WebhookDelivery]) -> None:
    """Insert deliveries."""
    session.add_all(rows)
    await session.flush()


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    id: int
    attempts: int
    created_at: datetime
    url: str
    secret: str
    event: StoredEvent


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Pending, due, and not leased to a live sender."""
    return (
        col(WebhookDelivery.status) == PENDING,
        col(WebhookDelivery.next_attempt_at) <= now,
        or_(col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now),
    )


async def has_due(session: AsyncSession, *, now: datetime) -> bool:
    """Whether some delivery is due now (a read)."""
    found = await session.scalar(select(col(WebhookDelivery.id)).where(*_due(now)).limit(1))
    return found is not None


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int = 50
) -> list[DueDelivery]:
    """Due pending deliveries, leased to the caller until ``lease_until`` (caller's transaction).

    A lease that runs out (the process died mid-send) makes the delivery due again.
    """
    query = (
        select(col(WebhookDelivery.id))
        .where(*_due(now))
        .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(await session.scalars(query))
    if not ids:
        return []
    await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id).in_(ids))
        .values(lease_until=lease_until)
    )
    rows = await session.execute(
        select(WebhookDelivery, WebhookEndpoint, OutboxEvent)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .join(OutboxEvent, col(OutboxEvent.id) == col(WebhookDelivery.outbox_id))
        .where(col(WebhookDelivery.id).in_(ids))
        .order_by(col(WebhookDelivery.id))
    )
    due = []
    for delivery, endpoint, event in rows.tuples():
        assert delivery.id is not None
        assert event.id is not None
        due.append(
            DueDelivery(
                id=delivery.id,
                attempts=delivery.attempts,
                created_at=delivery.created_at,
                url=endpoint.url,
                secret=endpoint.secret,
                event=StoredEvent(
                    event.id,
                    event.event_id,
                    event.site_id,
                    event.type,
                    event.payload,
                    event.created_at,
                ),
            )
        )
    return due


async def record_attempt(
    session: AsyncSession,
    *,
    delivery_id: int,
    attempt: WebhookAttempt,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    """Log an attempt and move the delivery on: delivered, failed, or due again later."""
    session.add(attempt)
    values: dict[str, object] = {
        "status": status,
        "attempts": WebhookDelivery.attempts + 1,
        "lease_until": None,
    }
    if status == DELIVERED:
        values["delivered_at"] = attempt.attempted_at
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    await session.execute(
        update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id).values(**values)
    )


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    """A delivery and its attempts, newest delivery first."""

    id: int
    webhook_id: str
    type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    log: list[WebhookAttempt]


async def delivery_log(
    session: AsyncSession, *, endpoint_id: str, limit: int = 50
) -> list[DeliveryLog]:
    """An endpoint's latest deliveries with every attempt."""
    rows = (
        await session.execute(
            select(WebhookDelivery, OutboxEvent)
            .join(OutboxEvent, col(OutboxEvent.id) == col(WebhookDelivery.outbox_id))
            .where(col(WebhookDelivery.endpoint_id) == endpoint_id)
            .order_by(col(WebhookDelivery.id).desc())
            .limit(limit)
        )
    ).tuples()
    deliveries = list(rows)
    ids = [delivery.id for delivery, _ in deliveries]
    attempts: dict[int, list[WebhookAttempt]] = {}
    if ids:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(ids))
            .order_by(col(WebhookAttempt.id))
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    result = []
    for delivery, event in deliveries:
        assert delivery.id is not None
        result.append(
            DeliveryLog(
                id=delivery.id,
                webhook_id=event.event_id,
                type=event.type,
                status=delivery.status,
                attempts=delivery.attempts,
                created_at=delivery.created_at,
                next_attempt_at=delivery.next_attempt_at,
                delivered_at=delivery.delivered_at,
                log=attempts.get(delivery.id, []),
            )
        )
    return result
