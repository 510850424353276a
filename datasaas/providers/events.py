"""What a verified provider event means for us, whatever the provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from datasaas.billing import PaymentType

VISITOR_KEY = "datasaas_visitor_id"
TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The body is not signed with the site's secret, or its timestamp is out of tolerance."""


class PayloadError(Exception):
    """A verified event lacks what its type needs (answered 400; nothing is written)."""


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A payment to record, amounts in the currency's minor units."""

    transaction_id: str
    payment_type: PaymentType
    amount_minor: int
    currency: str
    paid_at: datetime
    product_name: str | None = None
    billing_interval: str | None = None
    billing_interval_count: int | None = None


@dataclass(frozen=True, slots=True)
class CumulativeRefund:
    """A provider's running total refunded on a charge; the new part becomes one refund.

    ``key`` names the charge (refund transaction ids are ``{key}:refund:{total}``);
    ``originals`` are the transaction ids the refunded payment may have been recorded under.
    """

    key: str
    total_refunded_minor: int
    currency: str
    refunded_at: datetime
    originals: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified event: its id and type, who it is about, and what to record (if anything)."""

    event_id: str
    event_type: str
    visitor_id: str | None = None
    customer_id: str | None = None
    payments: list[NewPayment] = field(default_factory=list)
    refund: CumulativeRefund | None = None


class Provider(Protocol):
    """A provider module's interface."""

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> Any:
        """The parsed body, once its signature checks out; SignatureError otherwise."""

    def read(self, payload: Any, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        """What the verified event means; PayloadError when a needed field is missing."""


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None as soon as a step is missing or not an object."""
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def text(value: Any) -> str | None:
    """A non-empty string (numbers as their text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        value = str(value).strip()
        return value or None
    return None


def minor(value: Any, what: str) -> int:
    """An integer amount of minor units; PayloadError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(f"{what} must be a non-negative integer of minor units")
    return value


def from_unix(value: Any, what: str) -> datetime:
    """A Unix timestamp (seconds) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{what} must be a Unix timestamp")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):  # NaN, infinities, far beyond year 9999
        raise PayloadError(f"{what} is not a usable Unix timestamp") from None


def from_iso(value: Any, what: str) -> datetime:
    """An ISO 8601 instant as an aware UTC datetime."""
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be an ISO 8601 instant")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # unparsable, or out of range once in UTC
        raise PayloadError(f"{what} must be an ISO 8601 instant") from None


def parse_json(body: bytes) -> Any:
    """The verified body as JSON; PayloadError when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        raise PayloadError("the body is not JSON") from None


def identifier(value: Any, what: str, *, max_length: int = 255) -> str:
    """A printable id of at most ``max_length`` characters; PayloadError otherwise."""
    found = text(value)
    if found is None or len(found) > max_length or not found.isprintable():
        raise PayloadError(f"{what} must be 1-{max_length} printable characters")
    return found
