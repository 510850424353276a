"""Provider payloads shaped as the providers document them, and their signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

STRIPE_SECRET = "whsec_test_" + "s" * 24
LEMON_SECRET = "lemon-signing-secret"
POLAR_SECRET = "whsec_" + "cG9sYXItdGVzdC1zZWNyZXQtYnl0ZXM="  # base64 of the key bytes


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, at: int | None = None
) -> dict[str, str]:
    """``Stripe-Signature: t=...,v1=...``: HMAC-SHA256 of ``"{t}.{body}"`` with the secret."""
    stamp = int(time.time()) if at is None else at
    signed = f"{stamp}.".encode() + body
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}


def stripe_event(kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) - 5,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def checkout_session(
    *,
    mode: str,
    visitor: str | None,
    customer: str | None = "cus_123",
    amount: int = 4900,
    payment_intent: str | None = "pi_123",
) -> dict[str, Any]:
    return {
        "id": f"cs_test_{uuid.uuid4().hex[:16]}",
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "client_reference_id": None,
        "currency": "usd",
        "customer": customer,
        "metadata": {"datasaas_visitor_id": visitor} if visitor else {},
        "mode": mode,
        "payment_intent": payment_intent if mode == "payment" else None,
        "payment_status": "paid",
        "status": "complete",
        "subscription": "sub_123" if mode == "subscription" else None,
    }


def invoice(
    *,
    invoice_id: str,
    amount: int,
    interval: str = "month",
    interval_count: int = 1,
    customer: str = "cus_123",
    visitor: str | None = None,
    paid_at: int | None = None,
    currency: str = "usd",
) -> dict[str, Any]:
    stamp = int(time.time()) - 60 if paid_at is None else paid_at
    recurring = {"interval": interval, "interval_count": interval_count, "usage_type": "licensed"}
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount,
        "amount_remaining": 0,
        "billing_reason": "subscription_cycle",
        "created": stamp,
        "currency": currency,
        "customer": customer,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_1",
                    "object": "line_item",
                    "amount": amount,
                    "currency": currency,
                    "description": f"1 \u00d7 Pro (at {amount / 100:.2f} / {interval})",
                    "plan": {"object": "plan", "amount": amount, **recurring},
                    "price": {
                        "id": "price_1",
                        "object": "price",
                        "recurring": recurring,
                        "type": "recurring",
                        "unit_amount": amount,
                    },
                }
            ],
            "has_more": False,
        },
        "metadata": {},
        "paid": True,
        "payment_intent": f"pi_for_{invoice_id}",
        "status": "paid",
        "status_transitions": {"finalized_at": stamp, "paid_at": stamp},
        "subscription": "sub_123",
        "subscription_details": {
            "metadata": {"datasaas_visitor_id": visitor} if visitor else {},
        },
    }


def charge(
    *,
    refunded: int,
    payment_intent: str | None = "pi_123",
    invoice_id: str | None = None,
    amount: int = 4900,
    customer: str = "cus_123",
) -> dict[str, Any]:
    return {
        "id": "ch_123",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "customer": customer,
        "invoice": invoice_id,
        "metadata": {},
        "paid": True,
        "payment_intent": payment_intent,
        "refunded": refunded == amount,
    }


def lemon_headers(body: bytes, secret: str = LEMON_SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": signature, "X-Event-Name": "", "Content-Type": "application/json"}


def lemon_event(
    event: str, data_type: str, data_id: str, attributes: dict[str, Any], visitor: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"event_name": event, "test_mode": True}
    if visitor:
        meta["custom_data"] = {"datasaas_visitor_id": visitor}
    return {
        "meta": meta,
        "data": {"type": data_type, "id": data_id, "attributes": attributes, "links": {}},
    }


def iso(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def polar_headers(
    body: bytes, secret: str = POLAR_SECRET, msg_id: str | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    key = Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())
    now = datetime.now(UTC)
    signature = key.sign(msg_id=msg_id, timestamp=now, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


def polar_order(
    kind: str,
    *,
    order_id: str,
    amount: int,
    billing_reason: str,
    visitor: str | None,
    customer: str = "polar_cus_1",
    interval: str | None = None,
    refunded: int = 0,
) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": iso(),
        "data": {
            "id": order_id,
            "created_at": iso(),
            "modified_at": iso(),
            "status": "refunded" if refunded else "paid",
            "paid": True,
            "subtotal_amount": amount,
            "discount_amount": 0,
            "net_amount": amount,
            "tax_amount": 0,
            "total_amount": amount,
            "refunded_amount": refunded,
            "refunded_tax_amount": 0,
            "currency": "usd",
            "billing_reason": billing_reason,
            "customer_id": customer,
            "customer": {"id": customer, "email": "a@example.com", "metadata": {}},
            "metadata": {"datasaas_visitor_id": visitor} if visitor else {},
            "product": {"id": "prod_1", "name": "Polar Pro"},
            "subscription": {"id": "polar_sub_1", "recurring_interval": interval}
            if interval
            else None,
        },
    }
