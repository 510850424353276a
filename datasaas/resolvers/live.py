"""Live data and push (CONTRACT §14): realtime presence, outbox events, the webhook registry.

Writes call ``completions_created`` / ``payments_created`` in their own transaction, so an event
exists exactly when its write committed. ``touch`` records presence for the 90-second realtime
count (heartbeats included, without storing them as pageviews).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import InvalidInput, NotFound
from datasaas.storage import outbox as outbox_store
from datasaas.storage import payments as payment_store
from datasaas.storage import sites as site_store
from datasaas.storage import webhooks as webhook_store
from datasaas.storage.live_models import WebhookEndpoint
from datasaas.storage.outbox import StoredEvent
from datasaas.storage.payments import LedgerRow, StoredPayment

WINDOW_SECONDS: Final = 90
GOAL_COMPLETED: Final = "goal.completed"
PAYMENT_CREATED: Final = "payment.created"
PAYMENT_REFUNDED: Final = "payment.refunded"
EVENT_TYPES: Final = (GOAL_COMPLETED, PAYMENT_CREATED, PAYMENT_REFUNDED)
PRESENCE_TYPES: Final = frozenset({"pageview", "goal", "_heartbeat", "_outbound"})
"""Tracker events that show a visitor is on the site now (``_leave`` says they left)."""


@dataclass(frozen=True, slots=True)
class Realtime:
    """Visitors with an event in the last ``window_seconds``."""

    visitors: int
    window_seconds: int = WINDOW_SECONDS


def shows_presence(event_type: str) -> bool:
    """Whether a tracker event counts for the realtime visitors."""
    return event_type in PRESENCE_TYPES


async def touch(
    session: AsyncSession, *, site_id: str, seen: dict[str, datetime], now: datetime | None = None
) -> None:
    """Record presence of visitors whose event lies inside the realtime window."""
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=WINDOW_SECONDS)
    recent = {uid: at for uid, at in seen.items() if at >= since}
    await outbox_store.touch_visitors(session, site_id=site_id, seen=recent)


async def realtime(session: AsyncSession, *, site_id: str, now: datetime | None = None) -> Realtime:
    """Distinct visitors with any event in the last 90 seconds."""
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=WINDOW_SECONDS)
    return Realtime(await outbox_store.count_recent(session, site_id=site_id, since=since))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class CompletionEvent:
    """A stored completion, as its ``goal.completed`` event describes it."""

    site_id: str
    goal_name: str
    visitor_key: int
    visitor_uid: str
    url: str | None
    metadata: dict[str, Any] | None
    at: datetime


async def completions_created(
    session: AsyncSession, completions: Sequence[CompletionEvent]
) -> list[StoredEvent]:
    """Write the ``goal.completed`` events of stored completions (caller's transaction): one
    read of the visitors' first touch, one presence upsert per site, one outbox insert."""
    if not completions:
        return []
    first = await outbox_store.first_touches(
        session, visitor_ids=[done.visitor_key for done in completions]
    )
    seen: dict[str, dict[str, datetime]] = {}
    events = []
    now = datetime.now(UTC)
    for done in completions:
        touch_of = first.get(done.visitor_key, outbox_store.FirstTouch())
        payload = {
            "goal_name": done.goal_name,
            "visitor_id": done.visitor_uid,
            "completed_at": _iso(done.at),
            "url": done.url,
            "metadata": done.metadata,
            "source": touch_of.source,
            "country": touch_of.country,
            "city": touch_of.city,
            "browser": touch_of.browser,
            "os": touch_of.os,
            "device_type": touch_of.device_type,
        }
        site_seen = seen.setdefault(done.site_id, {})
        site_seen[done.visitor_uid] = max(done.at, site_seen.get(done.visitor_uid, done.at))
        events.append(outbox_store.NewEvent(done.site_id, GOAL_COMPLETED, payload, now))
    for site_id, visitors in seen.items():
        await touch(session, site_id=site_id, seen=visitors, now=now)
    return await outbox_store.add_events(session, events)


def ledger_payload(row: LedgerRow) -> dict[str, Any]:
    """A ledger row as JSON-safe values (minor units kept exact as integers)."""
    return {**asdict(row), "paid_at": _iso(row.paid_at)}


def ledger_row(payload: dict[str, Any]) -> LedgerRow:
    """The inverse of ``ledger_payload``."""
    values = dict(payload)
    values["paid_at"] = datetime.fromisoformat(values["paid_at"])
    return LedgerRow(**values)


async def payments_created(
    session: AsyncSession,
    created: Sequence[tuple[StoredPayment, str]],
    *,
    ledger: Mapping[int, LedgerRow] | None = None,
) -> None:
    """Write the ``payment.created`` / ``payment.refunded`` events of new payments, each with
    its payer's uid (their ledger rows in one read unless given, the payers' presence, one
    insert)."""
    if not created:
        return
    ids = [payment.id for payment, _ in created]
    rows = (
        ledger if ledger is not None else await payment_store.ledger_rows(session, payment_ids=ids)
    )
    seen: dict[str, dict[str, datetime]] = {}
    for payment, uid in created:
        payers = seen.setdefault(payment.site_id, {})
        payers[uid] = max(payers.get(uid, payment.paid_at), payment.paid_at)
    for site_id, payers in seen.items():
        await touch(session, site_id=site_id, seen=payers)
    at = datetime.now(UTC)
    await outbox_store.add_events(
        session,
        [
            outbox_store.NewEvent(
                payment.site_id,
                PAYMENT_REFUNDED if payment.payment_type == "refund" else PAYMENT_CREATED,
                ledger_payload(rows[id_]),
                at,
            )
            for id_, (payment, _) in zip(ids, created, strict=True)
        ],
    )


# --- the webhook registry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedWebhook:
    """A new endpoint; ``secret`` (``whsec_…``) is shown once."""

    endpoint: WebhookEndpoint
    secret: str


def parse_events(value: str | Iterable[str]) -> list[str]:
    """Event types from ``goal.completed,payment.created`` (InvalidInput on unknown ones)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(part.strip().lower() for part in parts if part.strip()))
    if not names:
        raise InvalidInput.for_field("events", f"name at least one of {', '.join(EVENT_TYPES)}")
    unknown = [name for name in names if name not in EVENT_TYPES]
    if unknown:
        raise InvalidInput.for_field(
            "events", f"unknown event type '{unknown[0]}' (known: {', '.join(EVENT_TYPES)})"
        )
    return names


def _url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2048:
        raise InvalidInput.for_field("url", "must be an http(s) URL of at most 2048 characters")
    return url


async def add_webhook(
    session: AsyncSession, *, site_id: str, url: str, events: str | Iterable[str]
) -> IssuedWebhook:
    """Register a receiver for a site's events, with a new Standard Webhooks secret."""
    clean_url, names = _url(url), parse_events(events)
    if await site_store.get_site(session, site_id) is None:
        raise NotFound(f"Site '{site_id}' does not exist.")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    endpoint = WebhookEndpoint(
        id="wh_" + secrets.token_hex(8),
        site_id=site_id,
        url=clean_url,
        events=",".join(names),
        secret=secret,
        created_at=datetime.now(UTC),
    )
    await webhook_store.add_endpoint(session, endpoint)
    return IssuedWebhook(endpoint, secret)


async def list_webhooks(
    session: AsyncSession, *, site_id: str | None = None
) -> Sequence[WebhookEndpoint]:
    """Registered endpoints (of one site, or all)."""
    return await webhook_store.list_endpoints(session, site_id=site_id)


async def remove_webhook(session: AsyncSession, *, endpoint_id: str) -> None:
    """Delete an endpoint (NotFound when unknown); its pending deliveries go with it."""
    if not await webhook_store.remove_endpoint(session, endpoint_id):
        raise NotFound(f"No webhook '{endpoint_id}'.")


async def deliveries(
    session: AsyncSession, *, endpoint_id: str, limit: int = 50
) -> list[webhook_store.DeliveryLog]:
    """An endpoint's latest deliveries and their attempts (NotFound when unknown)."""
    if await webhook_store.get_endpoint(session, endpoint_id) is None:
        raise NotFound(f"No webhook '{endpoint_id}'.")
    return await webhook_store.delivery_log(session, endpoint_id=endpoint_id, limit=limit)
