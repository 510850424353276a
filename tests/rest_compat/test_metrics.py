"""Metric values on hand-built data, with the expected numbers worked out here (CONTRACT §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_pageview, make_site

RANGE = "start=2026-03-01&end=2026-03-26"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def post(client: httpx.AsyncClient, headers: dict[str, str], path: str, **body: Any) -> None:
    response = await client.post(f"/api/v1/{path}?site_id=ds_test", headers=headers, json=body)
    assert response.status_code == 200, response.text


async def get(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> Any:
    sep = "&" if "?" in path else "?"
    response = await client.get(f"/api/v1/{path}{sep}site_id=ds_test", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def headers(database: Database) -> dict[str, str]:
    await make_site(database)
    return bearer(await make_key(database))


@pytest.fixture
async def march(
    database: Database, client: httpx.AsyncClient, headers: dict[str, str]
) -> dict[str, str]:
    """Ten pageview visitors in March, one in February, goals and payments around them."""
    for n in range(1, 11):
        await make_pageview(database, visitor_id=f"v{n}", at=at(f"2026-03-{n + 1:02d}T09:00:00"))
    await make_pageview(database, visitor_id="v_feb", at=at("2026-02-20T09:00:00"))
    goal = "goals"
    await post(
        client, headers, goal, name="signup", visitor_id="v1", completed_at="2026-03-02T10:00:00Z"
    )
    await post(
        client, headers, goal, name="signup", visitor_id="v1", completed_at="2026-03-05T10:00:00Z"
    )
    await post(
        client, headers, goal, name="Signup", visitor_id="v2", completed_at="2026-03-03T10:00:00Z"
    )
    await post(
        client, headers, goal, name="signup", visitor_id="v3", completed_at="2026-03-26T23:30:00Z"
    )
    await post(
        client, headers, goal, name="signup", visitor_id="v4", completed_at="2026-03-27T00:00:00Z"
    )
    await post(
        client, headers, goal, name="purchase", visitor_id="v1", completed_at="2026-03-10T10:00:00Z"
    )
    await post(
        client,
        headers,
        goal,
        name="newsletter_subscribe",
        visitor_id="v_feb",
        completed_at="2026-02-21T10:00:00Z",
    )
    pay = "payments"
    # A visitor known only through a payment still counts as a visitor.
    await post(
        client,
        headers,
        pay,
        visitor_id="p1",
        amount="49.99",
        currency="USD",
        transaction_id="t_p1",
        paid_at="2026-03-15T12:00:00Z",
    )
    await post(
        client,
        headers,
        pay,
        visitor_id="v1",
        amount=100,
        currency="USD",
        transaction_id="t_v1",
        paid_at="2026-03-10T12:00:00Z",
    )
    await post(
        client,
        headers,
        pay,
        visitor_id="v1",
        amount="25.00",
        currency="USD",
        transaction_id="t_v1_refund",
        payment_type="refund",
        original_transaction_id="t_v1",
        paid_at="2026-03-12T12:00:00Z",
    )
    await post(
        client,
        headers,
        pay,
        visitor_id="v2",
        amount="10.00",
        currency="USD",
        transaction_id="t_v2_refund_late",
        payment_type="refund",
        paid_at="2026-03-27T12:00:00Z",
    )
    await post(
        client,
        headers,
        pay,
        visitor_id="v5",
        amount="0",
        currency="USD",
        transaction_id="t_v5_free",
        paid_at="2026-03-20T12:00:00Z",
    )
    await post(
        client,
        headers,
        pay,
        visitor_id="v_feb",
        amount="70.00",
        currency="USD",
        transaction_id="t_feb",
        paid_at="2026-02-20T12:00:00Z",
    )
    return headers


async def test_goals_list_counts_conversion_and_order(
    client: httpx.AsyncClient, march: dict[str, str]
) -> None:
    body = await get(client, march, f"goals?{RANGE}")
    # Visitors in range: v1..v10 (pageviews) + p1 (payment only) = 11.
    assert body["meta"]["visitors"] == 11
    assert body["results"] == [
        {
            "goal_name": "signup",
            "unique_visitors": 3,
            "completion_count": 4,
            "conversion_rate": 0.2727,
        },
        {
            "goal_name": "purchase",
            "unique_visitors": 1,
            "completion_count": 1,
            "conversion_rate": 0.0909,
        },
        {
            "goal_name": "newsletter_subscribe",
            "unique_visitors": 0,
            "completion_count": 0,
            "conversion_rate": 0.0,
        },
    ]
    assert body["meta"]["start"] == "2026-03-01T00:00:00Z"
    assert body["meta"]["end"] == "2026-03-26T23:59:59Z"


async def test_goals_limit_and_offset(client: httpx.AsyncClient, march: dict[str, str]) -> None:
    page = await get(client, march, f"goals?{RANGE}&limit=1&offset=1")
    assert [g["goal_name"] for g in page["results"]] == ["purchase"]
    tail = await get(client, march, f"goals?{RANGE}&offset=3")
    assert tail["results"] == []


async def test_completions_newest_first_within_range(
    client: httpx.AsyncClient, march: dict[str, str]
) -> None:
    body = await get(client, march, f"goals/Signup/completions?{RANGE}&limit=10")
    assert [(c["visitor_id"], c["completed_at"]) for c in body["results"]] == [
        ("v3", "2026-03-26T23:30:00Z"),
        ("v1", "2026-03-05T10:00:00Z"),
        ("v2", "2026-03-03T10:00:00Z"),
        ("v1", "2026-03-02T10:00:00Z"),
    ]
    assert body["meta"]["goal_name"] == "signup"
    assert body["meta"]["limit"] == 10
    assert set(body["results"][0]) == {
        "visitor_id",
        "completed_at",
        "source",
        "country",
        "city",
        "browser",
        "os",
        "device_type",
    }


async def test_completions_of_unknown_goal_are_empty(
    client: httpx.AsyncClient, march: dict[str, str]
) -> None:
    body = await get(client, march, f"goals/never_recorded/completions?{RANGE}")
    assert body["results"] == []


async def test_completions_ties_break_by_insertion_order(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for visitor in ("first", "second", "third"):
        await post(
            client,
            headers,
            "goals",
            name="tie",
            visitor_id=visitor,
            completed_at="2026-03-05T10:00:00Z",
        )
    body = await get(client, headers, f"goals/tie/completions?{RANGE}")
    assert [c["visitor_id"] for c in body["results"]] == ["third", "second", "first"]
    page = await get(client, headers, f"goals/tie/completions?{RANGE}&limit=1&offset=1")
    assert [c["visitor_id"] for c in page["results"]] == ["second"]


async def test_revenue_net_of_refunds_in_range(
    client: httpx.AsyncClient, march: dict[str, str]
) -> None:
    response = await client.get(f"/api/v1/revenue?site_id=ds_test&{RANGE}", headers=march)
    # new = 49.99 + 100 + 0 ; refunds in range = 25.00 (the late refund is out of range).
    assert '"total_revenue":124.99' in response.text
    body = response.json()
    assert body["results"]["mrr"] == 0
    # Paying visitors: p1 and v1 (v5 paid 0) = 2 of 11 visitors.
    assert body["results"]["conversion_rate"] == 0.1818
    assert body["meta"]["currency"] == "USD"
    assert set(body["results"]) == {"total_revenue", "mrr", "conversion_rate"}


async def test_revenue_timeseries_zero_filled_days(
    client: httpx.AsyncClient, march: dict[str, str]
) -> None:
    body = await get(client, march, f"revenue/timeseries?{RANGE}&granularity=day")
    points = {p["period"]: (p["new_revenue"], p["refund_revenue"]) for p in body["results"]}
    assert len(body["results"]) == 26
    assert body["results"][0]["period"] == "2026-03-01"
    assert points["2026-03-10"] == (100, 0)
    assert points["2026-03-12"] == (0, 25)
    assert points["2026-03-15"] == (49.99, 0)
    assert points["2026-03-11"] == (0, 0)
    assert body["meta"]["granularity"] == "day"


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        # February is short: 29, 30 and 31 days before Mar 26 all lie more than a month back.
        ("2026-03-26T23:59:59Z", "0.00"),
        # April has 30 days: 29 days before is covered, 30 days before ends exactly at `end`.
        ("2026-05-26T23:59:59Z", "10.00"),
        # July has 31 days: 29 and 30 days before are covered, 31 days before ends at `end`.
        ("2026-08-26T23:59:59Z", "30.00"),
    ],
)
async def test_mrr_counts_recurring_payments_covering_end(
    client: httpx.AsyncClient, headers: dict[str, str], end: str, expected: str
) -> None:
    end_at = datetime.fromisoformat(end)
    for days, amount in ((29, "10.00"), (30, "20.00"), (31, "40.00")):
        paid = end_at.replace(tzinfo=UTC) - timedelta(days=days)
        await post(
            client,
            headers,
            "payments",
            visitor_id=f"s{days}",
            amount=amount,
            currency="USD",
            payment_type="recurring",
            transaction_id=f"sub_{end[:7]}_{days}",
            paid_at=paid.isoformat(),
        )
    response = await client.get(
        f"/api/v1/revenue?site_id=ds_test&start=2026-01-01&end={end}", headers=headers
    )
    assert f'"mrr":{expected}' in response.text


async def test_mrr_less_refunds_naming_the_subscription(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await post(
        client,
        headers,
        "payments",
        visitor_id="s",
        amount="50.00",
        currency="USD",
        payment_type="recurring",
        transaction_id="sub",
        paid_at="2026-03-10T00:00:00Z",
    )
    await post(
        client,
        headers,
        "payments",
        visitor_id="s",
        amount="20.00",
        currency="USD",
        payment_type="refund",
        original_transaction_id="sub",
        transaction_id="sub_r",
        paid_at="2026-03-11T00:00:00Z",
    )
    response = await client.get(
        "/api/v1/revenue?site_id=ds_test&start=2026-03-01&end=2026-03-20", headers=headers
    )
    assert '"mrr":30.00' in response.text
    assert '"total_revenue":30.00' in response.text


async def test_eur_payment_converted_at_that_days_ecb_rate(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    # ECB reference rate on 2024-03-15: 1 EUR = 1.0892 USD; 123.45 EUR = 134.4617 -> 134.46.
    await post(
        client,
        headers,
        "payments",
        visitor_id="eu",
        amount="123.45",
        currency="eur",
        transaction_id="eur1",
        paid_at="2024-03-15T10:00:00Z",
    )
    # Saturday 2024-03-16 uses Friday's rate.
    await post(
        client,
        headers,
        "payments",
        visitor_id="eu",
        amount="10.00",
        currency="EUR",
        transaction_id="eur2",
        paid_at="2024-03-16T10:00:00Z",
    )
    response = await client.get(
        "/api/v1/revenue?site_id=ds_test&start=2024-03-15&end=2024-03-16", headers=headers
    )
    # 10.00 EUR * 1.0892 = 10.892 -> 10.89 ; 134.46 + 10.89 = 145.35
    assert '"total_revenue":145.35' in response.text


async def test_jpy_site_reports_whole_yen(database: Database, client: httpx.AsyncClient) -> None:
    await make_site(database, site_id="ds_jp", currency="JPY")
    key = bearer(await make_key(database, site_id="ds_jp"))
    response = await client.post(
        "/api/v1/payments?site_id=ds_jp",
        headers=key,
        json={
            "visitor_id": "j",
            "amount": 1500,
            "currency": "JPY",
            "transaction_id": "j1",
            "paid_at": "2026-03-02T00:00:00Z",
        },
    )
    assert response.status_code == 200, response.text
    summary = await client.get(
        "/api/v1/revenue?site_id=ds_jp&start=2026-03-01&end=2026-03-05", headers=key
    )
    assert '"total_revenue":1500,' in summary.text


async def test_kwd_site_reports_three_decimals(
    database: Database, client: httpx.AsyncClient
) -> None:
    await make_site(database, site_id="ds_kw", currency="KWD")
    key = bearer(await make_key(database, site_id="ds_kw"))
    response = await client.post(
        "/api/v1/payments?site_id=ds_kw",
        headers={**key, "Content-Type": "application/json"},
        content=b'{"visitor_id": "k", "amount": 1.234, "currency": "KWD", "transaction_id": "k1",'
        b' "paid_at": "2026-03-02T00:00:00Z"}',
    )
    assert response.status_code == 200, response.text
    summary = await client.get(
        "/api/v1/revenue?site_id=ds_kw&start=2026-03-01&end=2026-03-05", headers=key
    )
    assert '"total_revenue":1.234,' in summary.text


async def test_currency_without_ecb_rate_is_refused_on_another_currency_site(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/payments?site_id=ds_test",
        headers=headers,
        json={"visitor_id": "k", "amount": "1.234", "currency": "KWD", "transaction_id": "k1"},
    )
    assert response.status_code == 400
    assert "KWD" in response.json()["error"]["message"]
    summary = await get(client, headers, "revenue")
    assert summary["results"]["total_revenue"] == 0
