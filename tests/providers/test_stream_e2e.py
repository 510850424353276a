"""Done when: a Stripe event stream posted to a running server gives the same revenue, MRR,
refunds and attribution as the equivalent payments posted through ``POST /api/v1/payments``."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from sqlalchemy import select

from datasaas.storage.engine import Database
from datasaas.storage.models import Payment, Visitor
from tests.cli.test_cli import datasaas
from tests.factories import bearer, make_key, make_site
from tests.providers.payloads import (
    STRIPE_SECRET,
    body_of,
    charge,
    checkout_session,
    invoice,
    stripe_event,
    stripe_headers,
)

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
REVENUE = """query($site: String!) {
  revenue(siteId: $site) { totalRevenue mrr newRevenue refundRevenue payingVisitors visitors
                           conversionRate currency }
}"""


def pageview(client: httpx.Client, site: str, visitor: str, referrer: str | None) -> None:
    event = {
        "website_id": site,
        "visitor_id": visitor,
        "session_id": f"s_{visitor}",
        "event_type": "pageview",
        "url": "https://example.com/pricing",
        "hostname": "example.com",
        "pathname": "/pricing",
        "referrer": referrer,
    }
    response = client.post("/api/events", json=event, headers={"User-Agent": CHROME})
    assert response.status_code == 202, response.text


async def attribution(database: Database, site: str) -> list[tuple[str, int, str, str | None]]:
    async with database.read() as session:
        rows = await session.execute(
            select(Payment.payment_type, Payment.amount_minor, Visitor.uid, Visitor.source)
            .join(Visitor)
            .where(Payment.site_id == site)
        )
    return sorted((kind, amount, uid, source) for kind, amount, uid, source in rows.all())


async def test_a_stripe_stream_equals_the_same_payments_posted_through_the_api(
    database: Database, database_url: str, live_server: str
) -> None:
    await make_site(database, site_id="ds_stripe")
    await make_site(database, site_id="ds_api")
    stripe_key = await make_key(database, site_id="ds_stripe")
    api_key = await make_key(database, site_id="ds_api")
    datasaas(
        "providers", "set", "--site", "ds_stripe", "--provider", "stripe",
        "--secret", STRIPE_SECRET, url=database_url,
    )  # fmt: skip
    listed = datasaas("providers", "list", "--site", "ds_stripe", "--json", url=database_url)
    assert STRIPE_SECRET not in listed.stdout
    assert [row["provider"] for row in json.loads(listed.stdout)] == ["stripe"]

    now = int(time.time())
    one_time = checkout_session(mode="payment", visitor="v_hn")
    subscribe = checkout_session(mode="subscription", visitor="v_direct", customer="cus_sub")
    monthly = invoice(
        invoice_id="in_m", amount=1200, customer="cus_sub", visitor="v_direct", paid_at=now - 90
    )
    yearly = invoice(
        invoice_id="in_y", amount=120000, interval="year", customer="cus_sub", paid_at=now - 60
    )
    stream = [
        stripe_event("checkout.session.completed", one_time),
        stripe_event("checkout.session.completed", subscribe),
        stripe_event("invoice.paid", monthly),
        stripe_event("invoice.paid", yearly),
        stripe_event("charge.refunded", charge(refunded=1000)),
        stripe_event("charge.refunded", charge(refunded=4900)),
    ]
    refund_at = stream[4]["created"]
    equivalent: list[dict[str, Any]] = [
        {"transaction_id": "pi_123", "visitor_id": "v_hn", "amount": "49.00",
         "paid_at": stream[0]["created"]},
        {"transaction_id": "in_m", "visitor_id": "v_direct", "amount": "12.00",
         "payment_type": "recurring", "paid_at": now - 90,
         "product_name": "1 \u00d7 Pro (at 12.00 / month)"},
        {"transaction_id": "in_y", "visitor_id": "v_direct", "amount": "1200.00",
         "payment_type": "recurring", "billing_interval": "year", "paid_at": now - 60,
         "product_name": "1 \u00d7 Pro (at 1200.00 / year)"},
        {"transaction_id": "r1", "visitor_id": "v_hn", "amount": "10.00",
         "payment_type": "refund", "original_transaction_id": "pi_123", "paid_at": refund_at},
        {"transaction_id": "r2", "visitor_id": "v_hn", "amount": "39.00",
         "payment_type": "refund", "original_transaction_id": "pi_123", "paid_at": refund_at},
    ]  # fmt: skip

    with httpx.Client(base_url=live_server, timeout=30) as client:
        for site in ("ds_stripe", "ds_api"):
            pageview(client, site, "v_hn", "https://news.ycombinator.com/item?id=1")
            pageview(client, site, "v_direct", None)
        for event in stream:
            body = body_of(event)
            response = client.post(
                "/api/webhooks/stripe/ds_stripe", content=body, headers=stripe_headers(body)
            )
            assert (response.status_code, response.json()) == (200, {"received": True})
        for payment in equivalent:
            stamp = payment.pop("paid_at")
            payment["paid_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
            response = client.post(
                "/api/v1/payments?site_id=ds_api",
                json={"currency": "USD", **payment},
                headers=bearer(api_key),
            )
            assert response.status_code == 200, response.text

        answers = {}
        for site, key in (("ds_stripe", stripe_key), ("ds_api", api_key)):
            rest = client.get(f"/api/v1/revenue?site_id={site}", headers=bearer(key)).json()
            graphql = client.post(
                "/graphql", json={"query": REVENUE, "variables": {"site": site}},
                headers=bearer(key),
            ).json()  # fmt: skip
            answers[site] = (rest["results"], graphql["data"]["revenue"])
    assert answers["ds_stripe"] == answers["ds_api"]
    rest, graphql = answers["ds_stripe"]
    assert rest["mrr"] == 112.0  # 12.00 monthly + 1,200.00 yearly / 12
    assert graphql["refundRevenue"] == "49.00"
    assert graphql["payingVisitors"] == 2
    stripe_rows = await attribution(database, "ds_stripe")
    assert stripe_rows == await attribution(database, "ds_api")
    assert ("one_time", 4900, "v_hn", "news.ycombinator.com") in stripe_rows
