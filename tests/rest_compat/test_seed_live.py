"""Every example of the DataSaaS Goals & Revenue reference, replayed against a real server.

The reference's responses are embedded below (the repository ships without ../shared). Each
request is sent exactly as the reference's curl shows, host replaced; the response must have the
same status class and the same field names, JSON types and nesting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from datasaas.resolvers.sites import Scope
from datasaas.storage.engine import Database
from tests.factories import make_key, make_site

SITE = "ds_abc123"
RANGE = "start=2026-03-01&end=2026-03-26"

SEED_GOALS = {
    "results": [
        {
            "goal_name": "signup",
            "unique_visitors": 340,
            "completion_count": 412,
            "conversion_rate": 0.027,
        },
    ],
    "meta": {"site_id": SITE, "start": "2026-03-01T00:00:00Z", "end": "2026-03-26T23:59:59Z"},
}
SEED_GOAL_CREATED = {"results": {"created": True, "goal_name": "signup"}, "meta": {"site_id": SITE}}
SEED_COMPLETIONS = {
    "results": [
        {
            "visitor_id": "v_8f3a2b1c",
            "completed_at": "2026-03-25T14:05:00Z",
            "source": "google.com",
            "country": "United States",
            "city": "San Francisco",
            "browser": "Chrome",
            "os": "macOS",
            "device_type": "desktop",
        },
    ],
    "meta": {
        "site_id": SITE,
        "goal_name": "signup",
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-03-26T23:59:59Z",
        "limit": 10,
    },
}
SEED_REVENUE = {
    "results": {"total_revenue": 24500.00, "mrr": 8200.00, "conversion_rate": 0.032},
    "meta": {
        "site_id": SITE,
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-03-26T23:59:59Z",
        "timezone": "UTC",
    },
}
SEED_TIMESERIES = {
    "results": [{"period": "2026-03-01", "new_revenue": 1200.00, "refund_revenue": 0.00}],
    "meta": {
        "site_id": SITE,
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-03-26T23:59:59Z",
        "granularity": "day",
    },
}
SEED_PAYMENT_CREATED = {
    "results": {"created": True, "transaction_id": "txn_abc123"},
    "meta": {"site_id": SITE},
}


def assert_same_shape(seed: Any, actual: Any, path: str = "$") -> None:
    """Same keys (meta may add), same JSON types, same nesting; values are not compared."""
    if isinstance(seed, dict):
        assert isinstance(actual, dict), f"{path}: expected an object"
        if path == "$.meta":
            assert set(seed) <= set(actual), f"{path}: missing {set(seed) - set(actual)}"
        else:
            assert set(seed) == set(actual), f"{path}: keys {set(actual)} != {set(seed)}"
        for key, value in seed.items():
            assert_same_shape(value, actual[key], f"{path}.{key}")
    elif isinstance(seed, list):
        assert isinstance(actual, list), f"{path}: expected an array"
        assert actual, f"{path}: expected items to compare"
        for item in actual:
            assert_same_shape(seed[0], item, f"{path}[]")
    elif isinstance(seed, bool):
        assert isinstance(actual, bool), f"{path}: expected a boolean"
    elif isinstance(seed, float):
        assert isinstance(actual, float), f"{path}: expected a decimal number, got {actual!r}"
    elif isinstance(seed, int):
        assert isinstance(actual, int), f"{path}: expected an integer"
        assert not isinstance(actual, bool), f"{path}: expected an integer"
    elif isinstance(seed, str):
        # Attribution fields are null for visitors never seen by the tracker.
        assert isinstance(actual, str) or (
            actual is None
            and path.endswith(("source", "country", "city", "browser", "os", "device_type"))
        ), f"{path}: expected a string, got {actual!r}"


def test_every_seed_example_over_http(database_url: str, live_server: str) -> None:
    async def setup() -> str:
        database = Database(database_url)
        try:
            await make_site(database, site_id=SITE, domain="app.example.com")
            return (await make_key(database, site_id=SITE, scope=Scope.READ_WRITE)).secret
        finally:
            await database.dispose()

    key = asyncio.run(setup())
    auth = {"Authorization": f"Bearer {key}"}
    json_auth = {**auth, "Content-Type": "application/json"}
    with httpx.Client(base_url=live_server, timeout=30) as http:
        # POST examples exactly as the reference shows them.
        created = http.post(
            f"/api/v1/goals?site_id={SITE}",
            headers=json_auth,
            content='{"name": "signup", "visitor_id": "v_8f3a2b1c", "url": '
            '"https://app.example.com/welcome", "metadata": {"plan": "pro"}}',
        )
        assert created.status_code == 200
        assert created.json() == SEED_GOAL_CREATED
        paid = http.post(
            f"/api/v1/payments?site_id={SITE}",
            headers=json_auth,
            content='{"visitor_id": "v_8f3a2b1c", "amount": 99.00, "currency": "USD", '
            '"transaction_id": "txn_abc123", "payment_type": "recurring", '
            '"product_name": "Pro Plan"}',
        )
        assert paid.status_code == 200
        assert paid.json() == SEED_PAYMENT_CREATED

        # Data inside the reference's March range, so the read examples have items to compare.
        for day, visitor in ((24, "v_9d4c3e2f"), (25, "v_8f3a2b1c")):
            assert (
                http.post(
                    f"/api/v1/goals?site_id={SITE}",
                    headers=auth,
                    json={
                        "name": "signup",
                        "visitor_id": visitor,
                        "completed_at": f"2026-03-{day}T09:30:00Z",
                    },
                ).status_code
                == 200
            )
        for txn, kind, amount, day in (
            ("m1", "recurring", "8200.00", 20),
            ("m2", "one_time", "16349.99", 2),
            ("m3", "refund", "49.99", 2),
        ):
            assert (
                http.post(
                    f"/api/v1/payments?site_id={SITE}",
                    headers=auth,
                    json={
                        "visitor_id": "v_9d4c3e2f",
                        "amount": amount,
                        "currency": "USD",
                        "transaction_id": txn,
                        "payment_type": kind,
                        "paid_at": f"2026-03-{day:02d}T10:00:00Z",
                    },
                ).status_code
                == 200
            )

        for url, seed in (
            (f"/api/v1/goals?site_id={SITE}&{RANGE}", SEED_GOALS),
            (f"/api/v1/goals/signup/completions?site_id={SITE}&{RANGE}&limit=10", SEED_COMPLETIONS),
            (f"/api/v1/revenue?site_id={SITE}&{RANGE}", SEED_REVENUE),
            (f"/api/v1/revenue/timeseries?site_id={SITE}&{RANGE}&granularity=day", SEED_TIMESERIES),
        ):
            response = http.get(url, headers=auth)
            assert response.status_code == 200, response.text
            body = response.json()
            assert_same_shape(seed, body)
            for field in ("site_id", "start", "end"):
                assert body["meta"][field] == seed["meta"][field]  # type: ignore[index]

        revenue = http.get(f"/api/v1/revenue?site_id={SITE}&{RANGE}", headers=auth)
        assert revenue.json()["results"] == {
            "total_revenue": 24500.00,
            "mrr": 8200.00,
            "conversion_rate": 0.5,  # two March visitors, one of them paid
        }
        series = http.get(
            f"/api/v1/revenue/timeseries?site_id={SITE}&{RANGE}&granularity=day", headers=auth
        ).json()["results"]
        assert len(series) == 26
        assert series[1] == {
            "period": "2026-03-02",
            "new_revenue": 16349.99,
            "refund_revenue": 49.99,
        }
