"""Billing intervals on POST /api/v1/payments and the normalised MRR of CONTRACT §12."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site, row_counts


@pytest.fixture
async def headers(database: Database) -> dict[str, str]:
    await make_site(database)
    return bearer(await make_key(database))


async def pay(
    client: httpx.AsyncClient, headers: dict[str, str], status: int = 200, **body: Any
) -> Any:
    payload = {"visitor_id": "v1", "currency": "USD", **body}
    response = await client.post("/api/v1/payments?site_id=ds_test", headers=headers, json=payload)
    assert response.status_code == status, response.text
    return response.json()


async def mrr_at(client: httpx.AsyncClient, headers: dict[str, str], end: str) -> str:
    response = await client.get(
        f"/api/v1/revenue?site_id=ds_test&start=2025-01-01&end={end}", headers=headers
    )
    assert response.status_code == 200, response.text
    text = response.text
    return text.split('"mrr":', 1)[1].split(",", 1)[0]


async def test_yearly_payment_adds_a_twelfth_for_twelve_months_then_nothing(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(
        client,
        headers,
        amount="1200.00",
        transaction_id="y1",
        payment_type="recurring",
        billing_interval="year",
        paid_at="2025-03-15T12:00:00Z",
    )
    assert await mrr_at(client, headers, "2025-03-15T12:00:00Z") == "100.00"
    assert await mrr_at(client, headers, "2025-09-30") == "100.00"
    assert await mrr_at(client, headers, "2026-03-15T11:59:59Z") == "100.00"
    assert await mrr_at(client, headers, "2026-03-15T12:00:00Z") == "0.00"
    assert await mrr_at(client, headers, "2025-03-15T11:59:59Z") == "0.00"


async def test_weekly_and_multi_month_counts(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    common = {"payment_type": "recurring", "paid_at": "2025-06-01T00:00:00Z"}
    await pay(
        client, headers, amount="12.00", transaction_id="w", billing_interval="week", **common
    )
    await pay(
        client,
        headers,
        amount="90.00",
        transaction_id="q",
        billing_interval="month",
        billing_interval_count=3,
        **common,
    )
    await pay(
        client,
        headers,
        amount="10.00",
        transaction_id="d",
        billing_interval="day",
        billing_interval_count=2,
        **common,
    )
    # week 12 * 52 / 12 = 52; quarter 90 / 3 = 30; two days 10 * 365 / 24 = 152.083…
    # summed exactly: 234.0833… → 234.08
    assert await mrr_at(client, headers, "2025-06-01T23:00:00Z") == "234.08"
    # After two days the daily plan is over; after a week the weekly one.
    assert await mrr_at(client, headers, "2025-06-03T00:00:00Z") == "82.00"
    assert await mrr_at(client, headers, "2025-06-08T00:00:00Z") == "30.00"
    assert await mrr_at(client, headers, "2025-08-31T23:59:59Z") == "30.00"
    assert await mrr_at(client, headers, "2025-09-01T00:00:00Z") == "0.00"


async def test_refunds_reduce_the_normalised_amount(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(
        client,
        headers,
        amount="1200.00",
        transaction_id="y",
        payment_type="recurring",
        billing_interval="year",
        paid_at="2025-01-10T00:00:00Z",
    )
    await pay(
        client,
        headers,
        amount="600.00",
        transaction_id="y_r",
        payment_type="refund",
        original_transaction_id="y",
        paid_at="2025-02-01T00:00:00Z",
    )
    assert await mrr_at(client, headers, "2025-01-31") == "100.00"
    assert await mrr_at(client, headers, "2025-03-01") == "50.00"


async def test_monthly_is_the_default_and_stays_section_six(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(
        client,
        headers,
        amount="30.00",
        transaction_id="m",
        payment_type="recurring",
        paid_at="2025-01-31T00:00:00Z",
    )
    assert await mrr_at(client, headers, "2025-02-27T23:59:59Z") == "30.00"
    assert await mrr_at(client, headers, "2025-02-28T00:00:00Z") == "0.00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payment_type": "one_time", "billing_interval": "month"}, "billing_interval"),
        ({"billing_interval_count": 2}, "billing_interval_count"),
        ({"payment_type": "recurring", "billing_interval": "fortnight"}, "billing_interval"),
        ({"payment_type": "recurring", "billing_interval_count": 0}, "billing_interval_count"),
        ({"payment_type": "recurring", "billing_interval_count": 366}, "billing_interval_count"),
        ({"payment_type": "recurring", "billing_interval_count": "2"}, "billing_interval_count"),
    ],
)
async def test_bad_billing_fields_are_400_and_store_nothing(
    database: Database,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    before = await row_counts(database)
    error = await pay(client, headers, 400, amount="5.00", transaction_id="bad", **body)
    assert error["error"]["details"][0]["field"] == field
    assert await row_counts(database) == before


async def test_replay_with_another_interval_conflicts(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"amount": "5.00", "transaction_id": "r", "payment_type": "recurring"}
    await pay(client, headers, billing_interval="month", paid_at="2025-01-01T00:00:00Z", **body)
    again = await pay(client, headers, paid_at="2025-01-01T00:00:00Z", **body)
    assert again["results"]["created"] is False
    await pay(client, headers, 409, billing_interval="year", paid_at="2025-01-01T00:00:00Z", **body)
