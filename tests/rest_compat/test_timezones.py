"""Local-time ranges and buckets over HTTP: DST days and hours, +05:30, weeks, months (§5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site


@pytest.fixture
async def headers(database: Database) -> dict[str, str]:
    await make_site(database)
    return bearer(await make_key(database))


async def pay(
    client: httpx.AsyncClient, headers: dict[str, str], paid_at: str, amount: str
) -> None:
    response = await client.post(
        "/api/v1/payments?site_id=ds_test",
        headers=headers,
        json={
            "visitor_id": "v",
            "amount": amount,
            "currency": "USD",
            "transaction_id": f"t_{paid_at}",
            "paid_at": paid_at,
        },
    )
    assert response.status_code == 200, response.text


async def series(client: httpx.AsyncClient, headers: dict[str, str], query: str) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/revenue/timeseries?site_id=ds_test&{query}", headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_new_york_days_across_spring_forward(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2026-03-08T04:59:00Z", "1.00")  # Mar 7, 23:59 EST
    await pay(client, headers, "2026-03-08T05:00:00Z", "2.00")  # Mar 8, 00:00 EST
    await pay(client, headers, "2026-03-09T03:59:00Z", "4.00")  # Mar 8, 23:59 EDT (23 h day)
    await pay(client, headers, "2026-03-09T04:00:00Z", "8.00")  # Mar 9, 00:00 EDT
    body = await series(
        client, headers, "start=2026-03-07&end=2026-03-09&timezone=America/New_York"
    )
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2026-03-07", 1),
        ("2026-03-08", 6),
        ("2026-03-09", 8),
    ]
    assert body["meta"]["start"] == "2026-03-07T00:00:00-05:00"
    assert body["meta"]["end"] == "2026-03-09T23:59:59-04:00"


async def test_new_york_hours_across_fall_back_repeat_one_oclock(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2026-11-01T05:30:00Z", "1.00")  # 01:30 EDT
    await pay(client, headers, "2026-11-01T06:30:00Z", "2.00")  # 01:30 EST
    body = await series(
        client,
        headers,
        "start=2026-11-01T00:00:00&end=2026-11-01T02:59:59"
        "&timezone=America/New_York&granularity=hour",
    )
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2026-11-01T00:00:00-04:00", 0),
        ("2026-11-01T01:00:00-04:00", 1),
        ("2026-11-01T01:00:00-05:00", 2),
        ("2026-11-01T02:00:00-05:00", 0),
    ]


async def test_berlin_hours_skip_two_oclock_in_spring_and_repeat_it_in_autumn(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    spring = await series(
        client,
        headers,
        "start=2026-03-29T00:00:00&end=2026-03-29T03:59:59&timezone=Europe/Berlin&granularity=hour",
    )
    assert [p["period"] for p in spring["results"]] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    autumn = await series(
        client,
        headers,
        "start=2026-10-25T01:00:00&end=2026-10-25T03:59:59&timezone=Europe/Berlin&granularity=hour",
    )
    assert [p["period"] for p in autumn["results"]] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


async def test_berlin_autumn_day_lasts_25_hours(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2026-10-24T22:00:00Z", "1.00")  # Oct 25 00:00 CEST
    await pay(client, headers, "2026-10-25T22:59:00Z", "2.00")  # Oct 25 23:59 CET
    await pay(client, headers, "2026-10-25T23:00:00Z", "4.00")  # Oct 26 00:00 CET
    body = await series(client, headers, "start=2026-10-25&end=2026-10-26&timezone=Europe/Berlin")
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2026-10-25", 3),
        ("2026-10-26", 4),
    ]


async def test_kolkata_days_start_at_1830_utc(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2026-03-01T18:29:00Z", "1.00")  # Mar 1, 23:59 IST
    await pay(client, headers, "2026-03-01T18:30:00Z", "2.00")  # Mar 2, 00:00 IST
    body = await series(client, headers, "start=2026-03-01&end=2026-03-02&timezone=Asia/Kolkata")
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2026-03-01", 1),
        ("2026-03-02", 2),
    ]
    assert body["meta"]["start"] == "2026-03-01T00:00:00+05:30"
    hours = await series(
        client,
        headers,
        "start=2026-03-02T00:00:00&end=2026-03-02T01:59:59&timezone=Asia/Kolkata&granularity=hour",
    )
    assert [(p["period"], p["new_revenue"]) for p in hours["results"]] == [
        ("2026-03-02T00:00:00+05:30", 2),
        ("2026-03-02T01:00:00+05:30", 0),
    ]


async def test_week_buckets_start_on_monday_even_when_range_starts_midweek(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2026-03-04T12:00:00Z", "1.00")  # Wednesday
    await pay(client, headers, "2026-03-02T12:00:00Z", "50.00")  # Monday, before the range
    await pay(client, headers, "2026-03-09T00:00:00Z", "2.00")  # next Monday
    body = await series(client, headers, "start=2026-03-04&end=2026-03-17&granularity=week")
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2026-03-02", 1),
        ("2026-03-09", 2),
        ("2026-03-16", 0),
    ]


async def test_month_buckets_across_year_end(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pay(client, headers, "2025-12-31T23:59:59Z", "1.00")
    await pay(client, headers, "2026-01-01T00:00:00Z", "2.00")
    body = await series(client, headers, "start=2025-11-15&end=2026-02-10&granularity=month")
    assert [(p["period"], p["new_revenue"]) for p in body["results"]] == [
        ("2025-11-01", 0),
        ("2025-12-01", 1),
        ("2026-01-01", 2),
        ("2026-02-01", 0),
    ]
    assert body["meta"]["end"] == "2026-02-10T23:59:59Z"


async def test_datetime_with_offset_and_naive_local_datetime(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/revenue?site_id=ds_test&start=2026-03-01T08:00:00%2B02:00"
        "&end=2026-03-02T10:30:00&timezone=America/New_York",
        headers=headers,
    )
    meta = response.json()["meta"]
    assert meta["start"] == "2026-03-01T01:00:00-05:00"
    assert meta["end"] == "2026-03-02T10:30:00-05:00"
    assert meta["timezone"] == "America/New_York"
