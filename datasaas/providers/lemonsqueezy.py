"""LemonSqueezy: ``X-Signature`` is the hex HMAC-SHA256 of the raw body with the signing secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from datasaas.billing import PaymentType
from datasaas.providers.events import (
    VISITOR_KEY,
    CumulativeRefund,
    NewPayment,
    PayloadError,
    ProviderEvent,
    SignatureError,
    dig,
    from_iso,
    identifier,
    minor,
    parse_json,
    text,
)

NAME = "lemonsqueezy"


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> Any:
    """The parsed event, once ``X-Signature`` matches; SignatureError otherwise."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = headers.get("x-signature", "").strip().lower()
    if not given or not hmac.compare_digest(expected, given):
        raise SignatureError("LemonSqueezy signature verification failed.")
    return parse_json(body)


def read(payload: Any, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
    """Map ``order_created``, ``subscription_payment_success`` and ``order_refunded``.

    LemonSqueezy sends no event id, so a redelivery is recognised by the SHA-256 of its body
    (a redelivery is byte-identical; a new refund changes ``refunded_amount``).
    """
    kind = identifier(dig(payload, "meta", "event_name"), "meta.event_name", max_length=128)
    event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    data_id = text(dig(payload, "data", "id"))
    attributes = dig(payload, "data", "attributes") or {}
    visitor = text(dig(payload, "meta", "custom_data", VISITOR_KEY))
    customer = text(dig(attributes, "customer_id"))
    currency = str(dig(attributes, "currency") or "")
    if kind in {"order_created", "subscription_payment_success", "order_refunded"} and not data_id:
        raise PayloadError("the event has no data.id")
    if kind == "order_created":
        payment = NewPayment(
            transaction_id=f"ls_order:{data_id}",
            payment_type=PaymentType.ONE_TIME,
            amount_minor=minor(dig(attributes, "total"), "total"),
            currency=currency,
            paid_at=from_iso(dig(attributes, "created_at"), "created_at"),
            product_name=text(dig(attributes, "first_order_item", "product_name")),
        )
        return ProviderEvent(event_id, kind, visitor, customer, [payment])
    if kind == "subscription_payment_success":
        payment = NewPayment(
            transaction_id=f"ls_invoice:{data_id}",
            payment_type=PaymentType.RECURRING,
            amount_minor=minor(dig(attributes, "total"), "total"),
            currency=currency,
            paid_at=from_iso(dig(attributes, "created_at"), "created_at"),
            billing_interval="month",  # the invoice does not carry the plan's interval
            billing_interval_count=1,
        )
        return ProviderEvent(event_id, kind, visitor, customer, [payment])
    if kind == "order_refunded":
        refund = CumulativeRefund(
            key=f"ls_order:{data_id}",
            total_refunded_minor=minor(dig(attributes, "refunded_amount"), "refunded_amount"),
            currency=currency,
            refunded_at=from_iso(
                dig(attributes, "refunded_at") or dig(attributes, "updated_at"), "refunded_at"
            ),
            originals=(f"ls_order:{data_id}",),
        )
        return ProviderEvent(event_id, kind, visitor, customer, refund=refund)
    return ProviderEvent(event_id, kind, visitor, customer)
