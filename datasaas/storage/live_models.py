"""Tables of live data and push (CONTRACT §14): the outbox, webhooks, realtime presence.

- ``outbox_event``: one row per committed completion or payment, written in the event's own
  transaction; the live hub fans it out to subscribers and the webhook dispatcher expands it
  into deliveries (``fanned_out_at``).
- ``webhook_endpoint`` / ``webhook_delivery`` / ``webhook_attempt``: receivers, one delivery per
  (event, endpoint) with its retry state, and the log of every attempt.
- ``realtime_visitor``: each visitor's last event instant (heartbeats included), for the
  90-second realtime count; rows older than the window are pruned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

from datasaas.storage.models import metadata as _metadata  # the naming convention first
from datasaas.storage.types import UTCDateTime

assert SQLModel.metadata is _metadata


def _at(*, nullable: bool = False) -> Any:
    return Field(sa_type=UTCDateTime(), nullable=nullable)


def _big_id() -> Any:
    return Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )


class OutboxEvent(SQLModel, table=True):
    """An event to push, committed with the write that caused it."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_pending", "fanned_out_at", "id"),
        Index("ix_outbox_event_created_at", "created_at"),
    )

    id: int | None = _big_id()
    event_id: str = Field(max_length=64, unique=True)
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    type: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = _at()
    fanned_out_at: datetime | None = _at(nullable=True)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of a site's events; ``events`` is a comma-separated list of event types."""

    __tablename__ = "webhook_endpoint"

    id: str = Field(primary_key=True, max_length=32)
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", index=True, max_length=64)
    url: str = Field(max_length=2048)
    events: str = Field(max_length=255)
    secret: str = Field(max_length=128)
    created_at: datetime = _at()


class WebhookDelivery(SQLModel, table=True):
    """One event owed to one endpoint: pending until a 2xx, failed after 24 h of retries."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "id"),
    )

    id: int | None = _big_id()
    endpoint_id: str = Field(
        sa_column_args=[ForeignKey("webhook_endpoint.id", ondelete="CASCADE")],
        max_length=32,
        nullable=False,
    )
    outbox_id: int = Field(
        sa_column_args=[ForeignKey("outbox_event.id", ondelete="CASCADE")],
        sa_type=BigInteger().with_variant(Integer, "sqlite"),
        nullable=False,
    )
    status: str = Field(max_length=16)
    attempts: int = 0
    created_at: datetime = _at()
    next_attempt_at: datetime = _at()
    lease_until: datetime | None = _at(nullable=True)
    delivered_at: datetime | None = _at(nullable=True)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt of a delivery: when, how long, the status or the error."""

    __tablename__ = "webhook_attempt"

    id: int | None = _big_id()
    delivery_id: int = Field(
        sa_column_args=[ForeignKey("webhook_delivery.id", ondelete="CASCADE")],
        sa_type=BigInteger().with_variant(Integer, "sqlite"),
        nullable=False,
        index=True,
    )
    attempted_at: datetime = _at()
    duration_ms: int
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)


class RealtimeVisitor(SQLModel, table=True):
    """A visitor's last event (any kind, heartbeats included) on a site."""

    __tablename__ = "realtime_visitor"
    __table_args__ = (Index("ix_realtime_visitor_site_id_seen_at", "site_id", "seen_at"),)

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    visitor_uid: str = Field(primary_key=True, max_length=128)
    seen_at: datetime = _at()
