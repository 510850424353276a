"""Payments: exact amounts, currency conversion, idempotent replays, refund limits, the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.billing import BillingInterval, PaymentType, cover_end, parse_count, parse_interval
from datasaas.errors import Conflict, FieldError, InvalidInput, NotFound
from datasaas.filters import Filter
from datasaas.money import convert, normalize_currency, parse_amount, to_major
from datasaas.resolvers import live, validation
from datasaas.resolvers.goals import decode_cursor, keyset_cursor
from datasaas.storage import filters as filter_store
from datasaas.storage import outbox as outbox_store
from datasaas.storage import payments as payment_store
from datasaas.storage import sites as site_store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.models import Payment, Site
from datasaas.storage.payments import LedgerRow, StoredPayment
from datasaas.storage.sql import core_rows
from datasaas.timerange import Period, TimeRange


@dataclass(frozen=True, slots=True)
class PaymentIn:
    """A payment as received (validated by ``record_payment``)."""

    visitor_id: object
    amount: object
    currency: object
    transaction_id: object
    payment_type: object = None
    product_name: object = None
    paid_at: object = None
    original_transaction_id: object = None
    billing_interval: object = None
    billing_interval_count: object = None


PAYMENT_FIELDS: Final = tuple(field.name for field in fields(PaymentIn))
"""The fields of a payment, as every door names them (snake_case)."""


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The stored payment, and whether this call created it (False for an identical replay)."""

    created: bool
    payment: StoredPayment
    visitor_uid: str


@dataclass(frozen=True, slots=True)
class _Clean:
    uid: str
    amount_minor: int
    currency: str
    transaction_id: str
    payment_type: PaymentType
    product_name: str | None
    paid_at: datetime
    paid_at_given: bool
    original_transaction_id: str | None
    billing_interval: BillingInterval | None
    billing_interval_count: int | None


def _payment_type(value: object) -> PaymentType:
    if value is None:
        return PaymentType.ONE_TIME
    try:
        return PaymentType(value.lower()) if isinstance(value, str) else PaymentType(str(value))
    except ValueError:
        raise InvalidInput.for_field(
            "payment_type", "must be one of one_time, recurring, refund"
        ) from None


def _clean(payment: PaymentIn, now: datetime) -> _Clean:
    uid = validation.visitor_id(payment.visitor_id)
    currency = normalize_currency(payment.currency)
    amount_minor = parse_amount(payment.amount, currency)
    transaction_id = validation.require_string(
        payment.transaction_id, "transaction_id", max_length=255
    )
    kind = _payment_type(payment.payment_type)
    product_name = validation.optional_string(payment.product_name, "product_name", max_length=255)
    paid_at = validation.instant(payment.paid_at, field="paid_at", now=now)
    original = validation.optional_string(
        payment.original_transaction_id, "original_transaction_id", max_length=255
    )
    if original is not None and kind is not PaymentType.REFUND:
        raise InvalidInput.for_field(
            "original_transaction_id", "only refunds may name an original transaction"
        )
    if original == transaction_id:
        raise InvalidInput.for_field("original_transaction_id", "a refund cannot refund itself")
    interval: BillingInterval | None = None
    count: int | None = None
    if kind is PaymentType.RECURRING:
        interval = parse_interval(payment.billing_interval)
        count = parse_count(payment.billing_interval_count)
    else:
        for name in ("billing_interval", "billing_interval_count"):
            if getattr(payment, name) is not None:
                raise InvalidInput.for_field(name, "only recurring payments have one")
    return _Clean(
        uid,
        amount_minor,
        currency,
        transaction_id,
        kind,
        product_name,
        paid_at,
        payment.paid_at is not None,
        original,
        interval,
        count,
    )


def _same(stored: Payment, stored_uid: str, clean: _Clean, provider: str) -> bool:
    return (
        stored_uid == clean.uid
        and stored.provider == provider
        and stored.amount_minor == clean.amount_minor
        and stored.currency == clean.currency
        and stored.payment_type == clean.payment_type.value
        and stored.product_name == clean.product_name
        and stored.original_transaction_id == clean.original_transaction_id
        and stored.billing_interval == (clean.billing_interval and clean.billing_interval.value)
        and stored.billing_interval_count == clean.billing_interval_count
        and (not clean.paid_at_given or stored.paid_at == clean.paid_at)
    )


async def _replay(
    session: AsyncSession, existing: Payment, clean: _Clean, provider: str
) -> PaymentResult:
    visitor = await visitor_store.get_visitor_by_key(session, existing.visitor_id)
    if not _same(existing, visitor, clean, provider):
        raise Conflict(
            f"Transaction '{clean.transaction_id}' was already recorded with different fields.",
            details=[FieldError("transaction_id", "already recorded with different fields")],
        )
    return PaymentResult(created=False, payment=StoredPayment.of(existing), visitor_uid=visitor)


async def _check_refund(session: AsyncSession, site: Site, clean: _Clean) -> None:
    if clean.original_transaction_id is None:
        return
    field = "original_transaction_id"
    original = await payment_store.get_payment(
        session, site_id=site.id, transaction_id=clean.original_transaction_id, for_update=True
    )
    if original is None or original.payment_type == PaymentType.REFUND:
        raise InvalidInput.for_field(field, "must name a payment (not a refund) of this site")
    if original.currency != clean.currency:
        raise InvalidInput.for_field(
            field, f"the original payment is in {original.currency}, the refund in {clean.currency}"
        )
    refunded = await payment_store.refunded_minor(
        session, site_id=site.id, transaction_id=original.transaction_id
    )
    if refunded + clean.amount_minor > original.amount_minor:
        detail = (
            f"refunds would exceed the original payment '{original.transaction_id}' "
            f"({refunded} of {original.amount_minor} minor units already refunded)"
        )
        raise Conflict(f"Refund refused: {detail}.", details=[FieldError("amount", detail)])


async def record_payment(
    session: AsyncSession,
    *,
    site: Site,
    payment: PaymentIn,
    provider: str = "api",
    now: datetime | None = None,
) -> PaymentResult:
    """Validate, convert and store a payment; an identical replay of a transaction id is a no-op.

    ``provider`` says where it came from: ``api`` or a native provider's webhook.
    """
    now = now or datetime.now(UTC)
    clean = _clean(payment, now)
    existing = await payment_store.get_payment(
        session, site_id=site.id, transaction_id=clean.transaction_id
    )
    if existing is not None:
        return await _replay(session, existing, clean, provider)
    await _check_refund(session, site, clean)
    visitor = await visitor_store.visitor_key(
        session, site_id=site.id, uid=clean.uid, seen_at=clean.paid_at
    )
    row = Payment(**_payment_values(site, clean, visitor, now, provider))
    if not await payment_store.insert_payment(session, row):
        # Another request stored the same transaction id between our lookup and insert.
        raced = await payment_store.get_payment(
            session, site_id=site.id, transaction_id=clean.transaction_id
        )
        assert raced is not None
        return await _replay(session, raced, clean, provider)
    await visitor_store.mark_active(session, site_id=site.id, visitor_id=visitor, at=clean.paid_at)
    result = PaymentResult(created=True, payment=StoredPayment.of(row), visitor_uid=clean.uid)
    await live.payments_created(session, [(result.payment, clean.uid)])
    return result


def _payment_values(
    site: Site, clean: _Clean, visitor: int, now: datetime, provider: str
) -> dict[str, Any]:
    """The ``payment`` row of a new payment, converted to the site's currency."""
    fx = convert(clean.amount_minor, clean.currency, site.currency, on=clean.paid_at.date())
    return {
        "site_id": site.id,
        "visitor_id": visitor,
        "transaction_id": clean.transaction_id,
        "payment_type": clean.payment_type.value,
        "amount_minor": clean.amount_minor,
        "currency": clean.currency,
        "reporting_amount_minor": fx.amount_minor,
        "reporting_currency": site.currency,
        "fx_rate": str(fx.rate),
        "fx_rate_date": fx.rate_date.isoformat() if fx.rate_date else None,
        "product_name": clean.product_name,
        "original_transaction_id": clean.original_transaction_id,
        "paid_at": clean.paid_at,
        "created_at": now,
        "provider": provider,
        "billing_interval": clean.billing_interval.value if clean.billing_interval else None,
        "billing_interval_count": clean.billing_interval_count,
        "covers_until_at": (
            cover_end(clean.paid_at, clean.billing_interval, clean.billing_interval_count)
            if clean.billing_interval is not None and clean.billing_interval_count is not None
            else None
        ),
    }


@dataclass(frozen=True, slots=True)
class PaymentWrite:
    """A payment validated before it is queued (``validate_payment``), to store with others."""

    site_id: str
    payment: PaymentIn
    clean: _Clean
    now: datetime
    provider: str = "api"


def validate_payment(
    site_id: str, payment: PaymentIn, *, provider: str = "api", now: datetime | None = None
) -> PaymentWrite:
    """Check a payment's fields (InvalidInput) so that it can be queued with others."""
    now = now or datetime.now(UTC)
    return PaymentWrite(site_id, payment, _clean(payment, now), now, provider)


async def record_payments(
    session: AsyncSession, writes: Sequence[PaymentWrite]
) -> list[PaymentResult]:
    """``record_payment`` of several payments, the common case set-based.

    New one-time and recurring payments of known sites whose transaction ids are new are
    stored together: one lookup of existing transaction ids per site, the visitors' keys, one
    ``INSERT … RETURNING`` of the payments, their activity slots, one read of their ledger
    rows, one presence upsert and one insert of their outbox events. Everything else (refunds,
    which check and lock their original; replays; a transaction id twice in the batch; an
    unknown site) is then stored one by one by ``record_payment``, in arrival order, so it sees
    the payments before it.
    """
    sites: dict[str, Site | None] = {}
    for write in writes:
        if write.site_id not in sites:
            sites[write.site_id] = await site_store.get_site(session, write.site_id)
    existing: dict[str, set[str]] = {}
    for site_id, site in sites.items():
        if site is not None:
            ids = [w.clean.transaction_id for w in writes if w.site_id == site_id]
            existing[site_id] = await payment_store.existing_transactions(
                session, site_id=site_id, transaction_ids=ids
            )
    together: list[int] = []
    taken: set[tuple[str, str]] = set()
    for number, write in enumerate(writes):
        key = (write.site_id, write.clean.transaction_id)
        if (
            sites[write.site_id] is not None
            and write.clean.payment_type is not PaymentType.REFUND
            and key not in taken
            and write.clean.transaction_id not in existing[write.site_id]
        ):
            together.append(number)
            taken.add(key)
    results: list[PaymentResult | None] = [None] * len(writes)
    if together:
        stored = await _store_new(session, [writes[n] for n in together], sites)
        for number, result in zip(together, stored, strict=True):
            results[number] = result
    for number, write in enumerate(writes):
        if results[number] is None:
            site = sites[write.site_id]
            if site is None:
                raise NotFound(f"Site '{write.site_id}' does not exist.")
            results[number] = await record_payment(
                session, site=site, payment=write.payment, provider=write.provider, now=write.now
            )
    return [result for result in results if result is not None]


async def _store_new(
    session: AsyncSession, writes: Sequence[PaymentWrite], sites: dict[str, Site | None]
) -> list[PaymentResult]:
    first_seen: dict[str, dict[str, datetime]] = {}
    for write in writes:
        seen = first_seen.setdefault(write.site_id, {})
        earlier = seen.get(write.clean.uid)
        seen[write.clean.uid] = min(earlier or write.clean.paid_at, write.clean.paid_at)
    keys: dict[tuple[str, str], int] = {}
    for site_id, seen in first_seen.items():
        found = await visitor_store.visitor_ids(
            session, site_id=site_id, uids=list(seen), seen_at=seen
        )
        keys |= {(site_id, uid): key for uid, key in found.items()}
    values = []
    for write in writes:
        site = sites[write.site_id]
        assert site is not None
        visitor = keys[(write.site_id, write.clean.uid)]
        values.append(_payment_values(site, write.clean, visitor, write.now, write.provider))
    ids_of: dict[int, int] = {}
    for site_id in dict.fromkeys(row["site_id"] for row in values):
        numbers = [n for n, row in enumerate(values) if row["site_id"] == site_id]
        rows = core_rows(Payment, [values[n] for n in numbers])
        inserted = await payment_store.insert_payments(session, rows)
        ids_of |= dict(zip(numbers, inserted, strict=True))
    ids = [ids_of[n] for n in range(len(values))]
    await visitor_store.mark_many_active(
        session, [(row["site_id"], row["visitor_id"], row["paid_at"]) for row in values]
    )
    results = [
        PaymentResult(
            created=True,
            payment=StoredPayment(
                id_, row["site_id"], row["transaction_id"], row["payment_type"], row["paid_at"]
            ),
            visitor_uid=write.clean.uid,
        )
        for id_, row, write in zip(ids, values, writes, strict=True)
    ]
    # Their ledger rows are what was just inserted plus the payers' first touch: no read back.
    touches = await outbox_store.first_touches(
        session, visitor_ids=[row["visitor_id"] for row in values]
    )
    ledger = {
        id_: payment_store.new_ledger_row(
            id_,
            row,
            visitor_uid=write.clean.uid,
            first_touch=touches.get(row["visitor_id"], outbox_store.FirstTouch()),
        )
        for id_, row, write in zip(ids, values, writes, strict=True)
    }
    await live.payments_created(
        session, [(r.payment, r.visitor_uid) for r in results], ledger=ledger
    )
    return results


@dataclass(frozen=True, slots=True)
class PaymentPage:
    """An offset page of the payments ledger."""

    range: TimeRange
    limit: int
    offset: int
    items: list[LedgerRow]


@dataclass(frozen=True, slots=True)
class PaymentConnection:
    """A keyset page of the payments ledger (Relay-style)."""

    items: list[LedgerRow]
    has_next_page: bool
    total_count: int

    @property
    def end_cursor(self) -> str | None:
        """The cursor of the last item, or None for an empty page."""
        return payment_cursor(self.items[-1]) if self.items else None


@dataclass(frozen=True, slots=True)
class DeletedPayment:
    """The outcome of ``delete_payment``."""

    transaction_id: str


def payment_cursor(row: LedgerRow) -> str:
    """Return an opaque cursor for a ledger row: its (paid_at, id) keyset position."""
    return keyset_cursor(row.paid_at, row.id)


def _ledger_type(value: object) -> str | None:
    return None if value is None else _payment_type(value).value


async def list_payments(
    session: AsyncSession,
    *,
    site_id: str,
    period: Period,
    filters: Sequence[Filter] = (),
    payment_type: object = None,
    limit: object = None,
    offset: object = None,
) -> PaymentPage:
    """A page of the ledger, newest first, with refunds and the payer's first touch."""
    rng = period.resolve()
    kind = _ledger_type(payment_type)
    page_size, skip = validation.limit(limit), validation.offset(offset)
    matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
    items = await payment_store.list_ledger(
        session,
        site_id=site_id,
        start=rng.start,
        end=rng.end,
        payment_type=kind,
        visitors=matching.applies_to(Payment.visitor_id) if matching else None,
        limit=page_size,
        offset=skip,
    )
    return PaymentPage(range=rng, limit=page_size, offset=skip, items=items)


async def payment_connection(
    session: AsyncSession,
    *,
    site_id: str,
    period: Period,
    filters: Sequence[Filter] = (),
    payment_type: object = None,
    first: int = 100,
    after: str | None = None,
) -> PaymentConnection:
    """A keyset page of the ledger and the total count; stable under concurrent inserts."""
    rng = period.resolve()
    kind = _ledger_type(payment_type)
    if not 1 <= first <= validation.MAX_LIMIT:
        raise InvalidInput.for_field("first", f"must be from 1 to {validation.MAX_LIMIT}")
    before = decode_cursor(after) if after else None
    matching = await filter_store.visitor_filter(session, site_id=site_id, filters=filters)
    visitors = matching.applies_to(Payment.visitor_id) if matching else None
    rows = await payment_store.list_ledger(
        session,
        site_id=site_id,
        start=rng.start,
        end=rng.end,
        payment_type=kind,
        visitors=visitors,
        limit=first + 1,
        before=before,
    )
    total = await payment_store.count_ledger(
        session,
        site_id=site_id,
        start=rng.start,
        end=rng.end,
        payment_type=kind,
        visitors=visitors,
    )
    return PaymentConnection(items=rows[:first], has_next_page=len(rows) > first, total_count=total)


async def ledger_entry(session: AsyncSession, *, payment: StoredPayment) -> LedgerRow:
    """A stored payment as the ledger shows it (refunds, provider, payer's first touch)."""
    return await payment_store.ledger_row(session, payment_id=payment.id)


async def delete_payment(
    session: AsyncSession, *, site_id: str, transaction_id: object
) -> DeletedPayment:
    """Delete a payment and everything derived from it, in the caller's transaction.

    Refused (Conflict) while refunds still name it. Its hour's cached bitmaps are marked stale
    and its visitor's activity slot is dropped when this payment was all the visitor did in it,
    so visitors, paying visitors, revenue and MRR of every range change at once.
    """
    wanted = validation.require_string(transaction_id, "transaction_id", max_length=255)
    payment = await payment_store.get_payment(
        session, site_id=site_id, transaction_id=wanted, for_update=True
    )
    if payment is None:
        raise NotFound(f"No payment '{wanted}' on site '{site_id}'.")
    refunds = await payment_store.refund_count(session, site_id=site_id, transaction_id=wanted)
    if refunds:
        raise Conflict(
            f"Payment '{wanted}' is named by {refunds} refund(s); delete the refunds first.",
            details=[FieldError("transaction_id", "refunds still name this payment")],
        )
    assert payment.id is not None
    await payment_store.delete_payment(session, payment_id=payment.id)
    await visitor_store.unmark_active(
        session, site_id=site_id, visitor_id=payment.visitor_id, at=payment.paid_at
    )
    return DeletedPayment(transaction_id=wanted)


def ledger_item(row: LedgerRow) -> dict[str, Any]:
    """A ledger row as every door shows it (REST items, webhook data): major units, UTC text."""
    return {
        "transaction_id": row.transaction_id,
        "visitor_id": row.visitor_uid,
        "amount": to_major(row.amount_minor, row.currency),
        "currency": row.currency,
        "reporting_amount": to_major(row.reporting_amount_minor, row.reporting_currency),
        "reporting_currency": row.reporting_currency,
        "fx_rate": row.fx_rate,
        "payment_type": row.payment_type,
        "product_name": row.product_name,
        "paid_at": row.paid_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "original_transaction_id": row.original_transaction_id,
        "refunded_amount": to_major(row.refunded_minor, row.currency),
        "billing_interval": row.billing_interval,
        "billing_interval_count": row.billing_interval_count,
        "provider": row.provider,
        "source": row.source,
        "country": row.country,
        "device_type": row.device_type,
    }
