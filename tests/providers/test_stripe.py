"""Stripe webhooks: verified with the stripe package, mapped through the payment resolver."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from datasaas.resolvers import providers as provider_resolvers
from datasaas.storage.engine import Database
from datasaas.storage.models import Payment, ProviderCustomer, ProviderEvent, Visitor
from tests.factories import bearer, make_key, make_site, row_counts
from tests.providers.payloads import (
    STRIPE_SECRET,
    body_of,
    charge,
    checkout_session,
    invoice,
    stripe_event,
    stripe_headers,
)

URL = "/api/webhooks/stripe/ds_test"


@pytest.fixture
async def stripe_site(database: Database) -> None:
    await make_site(database)
    await make_site(database, site_id="ds_other", domain="other.example.com")
    async with database.write() as session:
        await provider_resolvers.set_provider(
            session, site_id="ds_test", provider="stripe", secret=STRIPE_SECRET
        )
        await provider_resolvers.set_provider(
            session, site_id="ds_other", provider="stripe", secret="whsec_other_site_secret"
        )


async def post(
    client: httpx.AsyncClient, payload: dict[str, Any], *, url: str = URL, **sign: Any
) -> httpx.Response:
    body = body_of(payload)
    return await client.post(url, content=body, headers=stripe_headers(body, **sign))


async def payments(database: Database) -> dict[str, dict[str, Any]]:
    async with database.read() as session:
        rows = (await session.execute(select(Payment, Visitor.uid).join(Visitor))).all()
    return {
        p.transaction_id: {
            "type": p.payment_type,
            "amount": p.amount_minor,
            "visitor": uid,
            "provider": p.provider,
            "original": p.original_transaction_id,
            "interval": p.billing_interval,
            "count": p.billing_interval_count,
            "product": p.product_name,
        }
        for p, uid in rows
    }


async def revenue(client: httpx.AsyncClient, database: Database) -> dict[str, Any]:
    key = await make_key(database)
    response = await client.get("/api/v1/revenue?site_id=ds_test", headers=bearer(key))
    assert response.status_code == 200, response.text
    results: dict[str, Any] = response.json()["results"]
    return results


@pytest.mark.usefixtures("stripe_site")
async def test_one_time_checkout_is_one_attributed_payment(
    client: httpx.AsyncClient, database: Database
) -> None:
    session = checkout_session(mode="payment", visitor="v_buyer")
    response = await post(client, stripe_event("checkout.session.completed", session))
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert await payments(database) == {
        "pi_123": {
            "type": "one_time",
            "amount": 4900,
            "visitor": "v_buyer",
            "provider": "stripe",
            "original": None,
            "interval": None,
            "count": None,
            "product": None,
        }
    }
    assert (await revenue(client, database))["total_revenue"] == 49.0


@pytest.mark.usefixtures("stripe_site")
async def test_subscription_invoices_set_intervals_and_renewals_keep_the_visitor(
    client: httpx.AsyncClient, database: Database
) -> None:
    # The subscription checkout links the customer to the visitor and records no payment.
    subscribe = checkout_session(mode="subscription", visitor="v_sub")
    assert (await post(client, stripe_event("checkout.session.completed", subscribe))).json()
    assert await payments(database) == {}
    first = invoice(invoice_id="in_month", amount=1200, visitor="v_sub")
    assert (await post(client, stripe_event("invoice.paid", first))).status_code == 200
    # A yearly renewal a year later carries no metadata at all: the customer link attributes it.
    yearly = invoice(invoice_id="in_year", amount=120000, interval="year")
    assert (await post(client, stripe_event("invoice.paid", yearly))).status_code == 200
    stored = await payments(database)
    assert (stored["in_month"]["interval"], stored["in_month"]["count"]) == ("month", 1)
    assert (stored["in_year"]["interval"], stored["in_year"]["count"]) == ("year", 1)
    assert {p["visitor"] for p in stored.values()} == {"v_sub"}
    assert stored["in_year"]["product"] == "1 \u00d7 Pro (at 1200.00 / year)"
    # §12: 12.00 a month plus 1,200.00 a year = 12.00 + 100.00 of MRR.
    assert (await revenue(client, database))["mrr"] == 112.0
    async with database.read() as session:
        link = await session.get(ProviderCustomer, ("ds_test", "stripe", "cus_123"))
    assert link is not None
    assert link.visitor_uid == "v_sub"


@pytest.mark.usefixtures("stripe_site")
async def test_a_customer_never_linked_becomes_a_provider_visitor(
    client: httpx.AsyncClient, database: Database
) -> None:
    renewal = invoice(invoice_id="in_orphan", amount=500, customer="cus_999")
    assert (await post(client, stripe_event("invoice.paid", renewal))).status_code == 200
    assert (await payments(database))["in_orphan"]["visitor"] == "stripe:cus_999"


@pytest.mark.usefixtures("stripe_site")
async def test_partial_then_full_refunds_never_exceed_the_payment(
    client: httpx.AsyncClient, database: Database
) -> None:
    paid = checkout_session(mode="payment", visitor="v_buyer")
    await post(client, stripe_event("checkout.session.completed", paid))
    assert (await post(client, stripe_event("charge.refunded", charge(refunded=1000)))).json()
    late_full = stripe_event("charge.refunded", charge(refunded=4900))
    early_partial = stripe_event("charge.refunded", charge(refunded=1000))
    assert (await post(client, late_full)).status_code == 200
    # An older event delivered late (and a redelivery of the first) change nothing.
    assert (await post(client, early_partial)).status_code == 200
    assert (await post(client, late_full)).status_code == 200
    stored = await payments(database)
    refunds = {k: v for k, v in stored.items() if v["type"] == "refund"}
    assert refunds == {
        "ch_123:refund:1000": refunds["ch_123:refund:1000"] | {"amount": 1000},
        "ch_123:refund:4900": refunds["ch_123:refund:4900"] | {"amount": 3900},
    }
    assert {v["original"] for v in refunds.values()} == {"pi_123"}
    assert {v["visitor"] for v in refunds.values()} == {"v_buyer"}
    totals = await revenue(client, database)
    assert totals["total_revenue"] == 0.0


@pytest.mark.usefixtures("stripe_site")
async def test_the_same_event_twice_is_recorded_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    event = stripe_event(
        "checkout.session.completed", checkout_session(mode="payment", visitor="v")
    )
    for _ in range(2):
        response = await post(client, event)
        assert (response.status_code, response.json()) == (200, {"received": True})
    assert len(await payments(database)) == 1
    async with database.read() as session:
        handled = (await session.execute(select(ProviderEvent))).scalars().all()
    assert [(e.event_id, e.outcome) for e in handled] == [(event["id"], "mapped")]


@pytest.mark.usefixtures("stripe_site")
async def test_ten_concurrent_deliveries_of_one_event_make_one_payment(
    client: httpx.AsyncClient, database: Database
) -> None:
    event = stripe_event(
        "checkout.session.completed", checkout_session(mode="payment", visitor="v")
    )
    answers = await asyncio.gather(*(post(client, event) for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert list(await payments(database)) == ["pi_123"]


@pytest.mark.usefixtures("stripe_site")
async def test_unknown_event_types_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await post(client, stripe_event("customer.created", {"id": "cus_1"}))
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert await payments(database) == {}


@pytest.mark.usefixtures("stripe_site")
@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad signature", 400),
        ("no signature", 400),
        ("stale timestamp", 400),
        ("future timestamp", 400),
        ("another site's secret", 400),
        ("unknown site", 404),
        ("unconfigured provider", 404),
        ("unknown provider", 404),
    ],
)
async def test_refused_deliveries_write_nothing(
    client: httpx.AsyncClient, database: Database, case: str, status: int
) -> None:
    event = stripe_event(
        "checkout.session.completed", checkout_session(mode="payment", visitor="v")
    )
    body = body_of(event)
    headers = stripe_headers(body)
    url = URL
    if case == "bad signature":
        headers = stripe_headers(body + b" ")
    elif case == "no signature":
        headers.pop("Stripe-Signature")
    elif case == "stale timestamp":
        headers = stripe_headers(body, at=int(time.time()) - 301)
    elif case == "future timestamp":
        headers = stripe_headers(body, at=int(time.time()) + 400)
    elif case == "another site's secret":
        headers = stripe_headers(body, secret="whsec_other_site_secret")
    elif case == "unknown site":
        url = "/api/webhooks/stripe/ds_nope"
    elif case == "unconfigured provider":
        url = "/api/webhooks/polar/ds_test"
    elif case == "unknown provider":
        url = "/api/webhooks/paypal/ds_test"
    before = await row_counts(database)
    response = await client.post(url, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == ("invalid_request" if status == 400 else "not_found")
    assert await row_counts(database) == before
    async with database.read() as session:
        assert (await session.execute(select(ProviderEvent))).first() is None


@pytest.mark.usefixtures("stripe_site")
async def test_bodies_over_one_mib_are_refused(client: httpx.AsyncClient) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(URL, content=body, headers=stripe_headers(body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.usefixtures("stripe_site")
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        body_of(
            stripe_event(
                "checkout.session.completed", checkout_session(mode="payment", visitor="v")
            )
            | {"created": 1e20}
        ),
        body_of(stripe_event("charge.refunded", charge(refunded=1)) | {"created": "soon"}),
        body_of(
            stripe_event(
                "checkout.session.completed", checkout_session(mode="payment", visitor="v" * 500)
            )
        ),
        body_of(
            stripe_event(
                "checkout.session.completed",
                checkout_session(mode="subscription", visitor="v\x00", customer="cus_1"),
            )
        ),
        body_of(
            stripe_event(
                "checkout.session.completed",
                checkout_session(mode="subscription", visitor="v", customer="c" * 1000),
            )
        ),
        body_of(stripe_event("invoice.paid", {"amount_paid": -5, "id": "in_neg"})),
        body_of({"id": "evt_\x00", "type": "invoice.paid"}),
    ],
    ids=[
        "not json",
        "huge created",
        "text created",
        "long visitor",
        "nul visitor",
        "long customer",
        "negative amount",
        "nul event id",
    ],
)
async def test_signed_but_unusable_events_are_400_and_write_nothing(
    client: httpx.AsyncClient, database: Database, body: bytes
) -> None:
    before = await row_counts(database)
    response = await client.post(URL, content=body, headers=stripe_headers(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert await row_counts(database) == before
    async with database.read() as session:
        assert (await session.execute(select(ProviderCustomer))).first() is None


@pytest.mark.usefixtures("stripe_site")
async def test_a_refund_before_its_payment_is_refused_until_the_payment_is_recorded(
    client: httpx.AsyncClient, database: Database
) -> None:
    refund = stripe_event("charge.refunded", charge(refunded=3000, invoice_id="in_o1"))
    early = await post(client, refund)
    assert early.status_code == 409  # the provider retries it
    assert await payments(database) == {}
    paid = invoice(invoice_id="in_o1", amount=3000, visitor="v_o")
    assert (await post(client, stripe_event("invoice.paid", paid))).status_code == 200
    assert (await post(client, refund)).status_code == 200  # the retry, now it can name it
    stored = await payments(database)
    assert stored["ch_123:refund:3000"]["original"] == "in_o1"
    assert {v["visitor"] for v in stored.values()} == {"v_o"}
    assert (await revenue(client, database))["mrr"] == 0.0


@pytest.mark.usefixtures("stripe_site")
async def test_concurrent_cumulative_refunds_of_one_charge_add_up_to_the_last_total(
    client: httpx.AsyncClient, database: Database
) -> None:
    paid = checkout_session(mode="payment", visitor="v_buyer", amount=1000)
    await post(client, stripe_event("checkout.session.completed", paid))
    for _ in range(3):
        events = [
            stripe_event("charge.refunded", charge(refunded=total, amount=1000))
            for total in (300, 600)
        ]
        answers = await asyncio.gather(*(post(client, event) for event in events))
        assert [a.status_code for a in answers] == [200, 200]
    refunds = [v["amount"] for v in (await payments(database)).values() if v["type"] == "refund"]
    assert sum(refunds) == 600
