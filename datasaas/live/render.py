"""Outbox events as webhook bodies: ``{"type", "timestamp", "data"}`` with the REST item shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from datasaas.resolvers import live as live_resolvers
from datasaas.rest_compat.routes import _ledger_item
from datasaas.storage.outbox import StoredEvent


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def completion_item(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``goal.completed`` event's data: the REST completion item, plus the goal, url, metadata."""
    return {
        "goal_name": payload["goal_name"],
        "visitor_id": payload["visitor_id"],
        "completed_at": _utc(payload["completed_at"]),
        "source": payload["source"],
        "country": payload["country"],
        "city": payload["city"],
        "browser": payload["browser"],
        "os": payload["os"],
        "device_type": payload["device_type"],
        "url": payload["url"],
        "metadata": payload["metadata"],
    }


def event_data(event: StoredEvent) -> dict[str, Any]:
    """The ``data`` of an event: a completion item or a payments-ledger item."""
    if event.type == live_resolvers.GOAL_COMPLETED:
        return completion_item(event.payload)
    return _ledger_item(live_resolvers.ledger_row(event.payload))


def webhook_body(event: StoredEvent) -> dict[str, Any]:
    """The JSON body of every delivery of ``event`` (identical across retries)."""
    return {
        "type": event.type,
        "timestamp": event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "site_id": event.site_id,
        "data": event_data(event),
    }
