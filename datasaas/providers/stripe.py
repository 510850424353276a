"""Stripe: ``Stripe-Signature`` verified by the ``stripe`` package; events of API 2024-06-20+."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from stripe import SignatureVerificationError, WebhookSignature

from datasaas.billing import PaymentType
from datasaas.providers.events import (
    TOLERANCE_SECONDS,
    VISITOR_KEY,
    CumulativeRefund,
    NewPayment,
    PayloadError,
    ProviderEvent,
    SignatureError,
    dig,
    from_unix,
    identifier,
    minor,
    parse_json,
    text,
)

NAME = "stripe"


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return None


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> Any:
    """The parsed event, once ``Stripe-Signature`` matches; SignatureError otherwise."""
    header = headers.get("stripe-signature", "")
    if not header:
        raise SignatureError("Missing Stripe-Signature header.")
    try:
        payload = body.decode("utf-8")
        WebhookSignature.verify_header(payload, header, secret, tolerance=TOLERANCE_SECONDS)
    except (SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"Stripe signature verification failed: {exc}") from None
    # The library refuses old timestamps only; a timestamp far in the future is refused too.
    stamp = _timestamp(header)
    if stamp is None or stamp > time.time() + TOLERANCE_SECONDS:
        raise SignatureError("Stripe signature timestamp is more than 300 s from now.")
    return parse_json(body)


def _visitor(*metadata_holders: Any) -> str | None:
    for holder in metadata_holders:
        if found := text(dig(holder, "metadata", VISITOR_KEY)):
            return found
    return None


def _recurring(line: Any) -> tuple[str, int] | None:
    for recurring in (dig(line, "price", "recurring"), dig(line, "plan")):
        interval = text(dig(recurring, "interval"))
        if interval:
            count = dig(recurring, "interval_count")
            if count is None:
                return interval, 1
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise PayloadError("price.recurring.interval_count must be a positive integer")
            return interval, count
    return None


def _checkout(event_id: str, kind: str, session: Any, created: Any) -> ProviderEvent:
    visitor = _visitor(session) or text(dig(session, "client_reference_id"))
    customer = text(dig(session, "customer"))
    payments = []
    if dig(session, "mode") == "payment" and dig(session, "payment_status") == "paid":
        transaction = text(dig(session, "payment_intent")) or text(dig(session, "id"))
        if transaction is None:
            raise PayloadError("checkout session without payment_intent")
        payments.append(
            NewPayment(
                transaction_id=transaction,
                payment_type=PaymentType.ONE_TIME,
                amount_minor=minor(dig(session, "amount_total"), "amount_total"),
                currency=str(dig(session, "currency") or ""),
                paid_at=from_unix(created, "created"),
            )
        )
    return ProviderEvent(event_id, kind, visitor, customer, payments)


def _invoice(event_id: str, kind: str, invoice: Any) -> ProviderEvent:
    visitor = _visitor(
        dig(invoice, "subscription_details"),
        dig(invoice, "parent", "subscription_details"),
        invoice,
    )
    customer = text(dig(invoice, "customer"))
    amount = minor(dig(invoice, "amount_paid"), "amount_paid")
    if amount == 0:
        return ProviderEvent(event_id, kind, visitor, customer)
    lines = dig(invoice, "lines", "data")
    line = lines[0] if isinstance(lines, list) and lines else {}
    recurring = _recurring(line)
    subscription = dig(invoice, "subscription") or dig(
        invoice, "parent", "subscription_details", "subscription"
    )
    if recurring is None and subscription:
        recurring = ("month", 1)  # a subscription invoice whose line names no interval
    paid_at = dig(invoice, "status_transitions", "paid_at") or dig(invoice, "created")
    transaction = text(dig(invoice, "id"))
    if transaction is None:
        raise PayloadError("invoice without id")
    payment = NewPayment(
        transaction_id=transaction,
        payment_type=PaymentType.RECURRING if recurring else PaymentType.ONE_TIME,
        amount_minor=amount,
        currency=str(dig(invoice, "currency") or ""),
        paid_at=from_unix(paid_at, "status_transitions.paid_at"),
        product_name=text(dig(line, "description")),
        billing_interval=recurring[0] if recurring else None,
        billing_interval_count=recurring[1] if recurring else None,
    )
    return ProviderEvent(event_id, kind, visitor, customer, [payment])


def _charge_refunded(event_id: str, kind: str, charge: Any, created: Any) -> ProviderEvent:
    charge_id = text(dig(charge, "id"))
    if charge_id is None:
        raise PayloadError("charge without id")
    originals = tuple(
        found
        for found in (text(dig(charge, "invoice")), text(dig(charge, "payment_intent")))
        if found
    )
    refund = CumulativeRefund(
        key=charge_id,
        total_refunded_minor=minor(dig(charge, "amount_refunded"), "amount_refunded"),
        currency=str(dig(charge, "currency") or ""),
        refunded_at=from_unix(created, "created"),
        originals=originals,
    )
    return ProviderEvent(
        event_id, kind, _visitor(charge), text(dig(charge, "customer")), refund=refund
    )


def read(payload: Any, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
    """Map ``checkout.session.completed``, ``invoice.paid`` and ``charge.refunded``; others
    are acknowledged and ignored."""
    event_id = identifier(dig(payload, "id"), "the event id")
    kind = identifier(dig(payload, "type"), "the event type", max_length=128)
    obj = dig(payload, "data", "object")
    created = dig(payload, "created")
    if kind == "checkout.session.completed":
        return _checkout(event_id, kind, obj, created)
    if kind == "invoice.paid":
        return _invoice(event_id, kind, obj)
    if kind == "charge.refunded":
        return _charge_refunded(event_id, kind, obj, created)
    return ProviderEvent(event_id, kind)
