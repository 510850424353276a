"""Polar: Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook

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

NAME = "polar"
_RECURRING_REASONS = {"subscription_create", "subscription_cycle", "subscription_update"}


def _webhook(secret: str) -> Webhook:
    # Standard Webhooks secrets are "whsec_" + base64 of the key; Polar's SDK takes any other
    # secret as the key's raw bytes.
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> Any:
    """The parsed event, once the Standard Webhooks signature matches (timestamp within 5 min)."""
    try:
        _webhook(secret).verify(body, dict(headers), json_parse=False)
    except Exception as exc:  # the library raises several kinds for malformed headers
        raise SignatureError(f"Polar signature verification failed: {exc}") from None
    return parse_json(body)


def _amount(order: Any, *names: str) -> int:
    for name in names:
        value = dig(order, name)
        if value is not None:
            return minor(value, name)
    raise PayloadError(f"order without {names[0]}")


def read(payload: Any, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
    """Map ``order.paid`` and ``order.refunded``; the event id is the ``webhook-id`` header."""
    event_id = identifier(headers.get("webhook-id"), "webhook-id")
    kind = identifier(dig(payload, "type"), "the event type", max_length=128)
    order = dig(payload, "data")
    visitor = text(dig(order, "metadata", VISITOR_KEY)) or text(
        dig(order, "customer", "metadata", VISITOR_KEY)
    )
    customer = text(dig(order, "customer_id")) or text(dig(order, "customer", "id"))
    order_id = text(dig(order, "id"))
    if kind in {"order.paid", "order.refunded"} and order_id is None:
        raise PayloadError("order without id")
    currency = str(dig(order, "currency") or "")
    if kind == "order.paid":
        reason = dig(order, "billing_reason")
        recurring = reason in _RECURRING_REASONS
        interval = text(dig(order, "subscription", "recurring_interval")) or "month"
        count = dig(order, "subscription", "recurring_interval_count")
        payment = NewPayment(
            transaction_id=f"polar_order:{order_id}",
            payment_type=PaymentType.RECURRING if recurring else PaymentType.ONE_TIME,
            amount_minor=_amount(order, "total_amount", "amount"),
            currency=currency,
            paid_at=from_iso(dig(order, "created_at"), "created_at"),
            product_name=text(dig(order, "product", "name")),
            billing_interval=interval if recurring else None,
            billing_interval_count=(count if isinstance(count, int) and count > 0 else 1)
            if recurring
            else None,
        )
        return ProviderEvent(event_id, kind, visitor, customer, [payment])
    if kind == "order.refunded":
        refunded = _amount(order, "refunded_amount") + minor(
            dig(order, "refunded_tax_amount") or 0, "refunded_tax_amount"
        )
        refund = CumulativeRefund(
            key=f"polar_order:{order_id}",
            total_refunded_minor=refunded,
            currency=currency,
            refunded_at=from_iso(
                dig(order, "modified_at") or dig(payload, "timestamp"), "modified_at"
            ),
            originals=(f"polar_order:{order_id}",),
        )
        return ProviderEvent(event_id, kind, visitor, customer, refund=refund)
    return ProviderEvent(event_id, kind, visitor, customer)
