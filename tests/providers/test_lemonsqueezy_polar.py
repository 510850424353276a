"""LemonSqueezy (HMAC of the body) and Polar (Standard Webhooks): purchase, renewal, refund."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from datasaas.resolvers import providers as provider_resolvers
from datasaas.storage.engine import Database
from tests.factories import make_site, row_counts
from tests.providers.payloads import (
    LEMON_SECRET,
    POLAR_SECRET,
    body_of,
    iso,
    lemon_event,
    lemon_headers,
    polar_headers,
    polar_order,
)
from tests.providers.test_stripe import payments


@pytest.fixture
async def connected(database: Database) -> None:
    await make_site(database)
    async with database.write() as session:
        for provider, secret in (("lemonsqueezy", LEMON_SECRET), ("polar", POLAR_SECRET)):
            await provider_resolvers.set_provider(
                session, site_id="ds_test", provider=provider, secret=secret
            )


def order_attributes(*, total: int, refunded: int = 0) -> dict[str, object]:
    return {
        "store_id": 1,
        "customer_id": 42,
        "identifier": "104e18a2-d755-4d4b-80c4-a6c1dcbe1c10",
        "order_number": 1,
        "currency": "USD",
        "subtotal": total,
        "total": total,
        "status": "refunded" if refunded else "paid",
        "refunded": bool(refunded),
        "refunded_at": iso() if refunded else None,
        "refunded_amount": refunded,
        "first_order_item": {"product_name": "Lemon Pro", "variant_name": "Default"},
        "created_at": iso(),
        "updated_at": iso(),
    }


@pytest.mark.usefixtures("connected")
async def test_lemonsqueezy_purchase_renewal_and_refund(
    client: AsyncClient, database: Database
) -> None:
    url = "/api/webhooks/lemonsqueezy/ds_test"
    order = lemon_event("order_created", "orders", "1", order_attributes(total=2900), "v_lemon")
    renewal = lemon_event(
        "subscription_payment_success",
        "subscription-invoices",
        "7",
        {
            "customer_id": 42,
            "subscription_id": 3,
            "currency": "USD",
            "total": 900,
            "billing_reason": "renewal",
            "status": "paid",
            "created_at": iso(),
        },
        None,  # renewals carry no custom data: the customer link attributes them
    )
    refund = lemon_event(
        "order_refunded", "orders", "1", order_attributes(total=2900, refunded=900), None
    )
    for event in (order, renewal, refund, refund):
        body = body_of(event)
        response = await client.post(url, content=body, headers=lemon_headers(body))
        assert (response.status_code, response.json()) == (200, {"received": True})
    stored = await payments(database)
    assert {k: (v["type"], v["amount"], v["visitor"]) for k, v in stored.items()} == {
        "ls_order:1": ("one_time", 2900, "v_lemon"),
        "ls_invoice:7": ("recurring", 900, "v_lemon"),
        "ls_order:1:refund:900": ("refund", 900, "v_lemon"),
    }
    assert stored["ls_order:1:refund:900"]["original"] == "ls_order:1"
    assert {v["provider"] for v in stored.values()} == {"lemonsqueezy"}
    assert stored["ls_order:1"]["product"] == "Lemon Pro"


@pytest.mark.usefixtures("connected")
async def test_lemonsqueezy_bad_signature_writes_nothing(
    client: AsyncClient, database: Database
) -> None:
    body = body_of(lemon_event("order_created", "orders", "1", order_attributes(total=1), "v"))
    before = await row_counts(database)
    response = await client.post(
        "/api/webhooks/lemonsqueezy/ds_test",
        content=body,
        headers=lemon_headers(body, secret="not-the-secret"),
    )
    assert response.status_code == 400
    assert await row_counts(database) == before


@pytest.mark.usefixtures("connected")
async def test_polar_purchase_renewal_and_refund(client: AsyncClient, database: Database) -> None:
    url = "/api/webhooks/polar/ds_test"
    purchase = polar_order(
        "order.paid", order_id="o1", amount=1500, billing_reason="purchase", visitor="v_polar"
    )
    renewal = polar_order(
        "order.paid",
        order_id="o2",
        amount=6000,
        billing_reason="subscription_cycle",
        visitor=None,
        interval="year",
    )
    refund = polar_order(
        "order.refunded",
        order_id="o1",
        amount=1500,
        billing_reason="purchase",
        visitor=None,
        refunded=500,
    )
    for event in (purchase, renewal, refund):
        body = body_of(event)
        response = await client.post(url, content=body, headers=polar_headers(body))
        assert (response.status_code, response.json()) == (200, {"received": True})
    # A redelivery carries the same webhook-id: acknowledged, nothing recorded.
    body = body_of(refund)
    replay = polar_headers(body, msg_id="msg_same")
    for _ in range(2):
        assert (await client.post(url, content=body, headers=replay)).status_code == 200
    stored = await payments(database)
    assert {k: (v["type"], v["amount"], v["visitor"]) for k, v in stored.items()} == {
        "polar_order:o1": ("one_time", 1500, "v_polar"),
        "polar_order:o2": ("recurring", 6000, "v_polar"),
        "polar_order:o1:refund:500": ("refund", 500, "v_polar"),
    }
    assert (stored["polar_order:o2"]["interval"], stored["polar_order:o2"]["count"]) == ("year", 1)
    assert stored["polar_order:o1"]["product"] == "Polar Pro"


@pytest.mark.usefixtures("connected")
async def test_polar_bad_signature_and_raw_secret(client: AsyncClient, database: Database) -> None:
    url = "/api/webhooks/polar/ds_test"
    body = body_of(
        polar_order("order.paid", order_id="o9", amount=100, billing_reason="purchase", visitor="v")
    )
    before = await row_counts(database)
    forged = polar_headers(body, secret="whsec_" + "Zm9yZ2Vk")
    assert (await client.post(url, content=body, headers=forged)).status_code == 400
    assert await row_counts(database) == before
    # A secret without the whsec_ prefix is the key's raw bytes, as Polar's SDK takes it.
    async with database.write() as session:
        await provider_resolvers.set_provider(
            session, site_id="ds_test", provider="polar", secret="raw-polar-secret"
        )
    signed = polar_headers(body, secret="raw-polar-secret")
    assert (await client.post(url, content=body, headers=signed)).status_code == 200
    assert "polar_order:o9" in await payments(database)


@pytest.mark.usefixtures("connected")
async def test_signed_but_malformed_bodies_are_400(client: AsyncClient, database: Database) -> None:
    before = await row_counts(database)
    body = b"{not json"
    polar = await client.post(
        "/api/webhooks/polar/ds_test", content=body, headers=polar_headers(body)
    )
    assert polar.status_code == 400
    assert "signature" not in polar.json()["error"]["message"]
    far = lemon_event(
        "order_created",
        "orders",
        "2",
        {**order_attributes(total=100), "created_at": "9999-12-31T23:59:59-05:00"},
        "v",
    )
    body = body_of(far)
    lemon = await client.post(
        "/api/webhooks/lemonsqueezy/ds_test", content=body, headers=lemon_headers(body)
    )
    assert lemon.status_code == 400
    assert await row_counts(database) == before
