"""One implementation, two front doors: REST and GraphQL give the same numbers on the same data.

Every test takes ``door``, parametrised over REST and GraphQL, which answers in REST's shape
(snake_case, money as Decimal), and checks numbers worked out by hand here: both doors must hit
them. ``test_every_read_is_identical_through_both_doors`` also compares the doors directly,
time zones and pages included.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx
import pytest
import simplejson

from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers.goals import GoalIn
from datasaas.resolvers.payments import PaymentIn
from datasaas.resolvers.sites import IssuedKey, require_site
from datasaas.storage.engine import Database
from tests.factories import bearer, make_pageview
from tests.schema.conftest import SITE

MARCH = {"start": "2026-03-01", "end": "2026-03-26"}
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
COMPLETION_FIELDS = (
    "visitor_id",
    "completed_at",
    "source",
    "country",
    "city",
    "browser",
    "os",
    "device_type",
)


def _exact(raw: str) -> Any:
    return json.loads(raw, parse_float=Decimal)


def _post_json(client: httpx.AsyncClient, url: str, body: Any, **kwargs: Any) -> Any:
    """POST ``body`` with Decimals written as exact JSON numbers."""
    headers = {**kwargs.pop("headers"), "content-type": "application/json"}
    content = simplejson.dumps(body, use_decimal=True)
    return client.post(url, content=content, headers=headers, **kwargs)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class FrontDoor(Protocol):
    """The reads and writes of the API, answered in REST's shape."""

    name: str

    async def goals(self, **args: Any) -> list[dict[str, Any]]: ...
    async def goal(self, name: str, **args: Any) -> dict[str, Any]: ...
    async def completions(self, name: str, *, page: int, **args: Any) -> list[dict[str, Any]]: ...
    async def revenue(self, **args: Any) -> dict[str, Any]: ...
    async def timeseries(self, **args: Any) -> list[dict[str, Any]]: ...
    async def create_goal(self, body: dict[str, Any]) -> dict[str, Any]: ...
    async def create_payment(self, body: dict[str, Any]) -> dict[str, Any]: ...


class Rest:
    """``/api/v1``."""

    name = "rest"

    def __init__(self, client: httpx.AsyncClient, key: IssuedKey) -> None:
        self.client, self.headers = client, bearer(key)

    async def _get(self, path: str, **args: Any) -> Any:
        response = await self.client.get(
            f"/api/v1/{path}", params={"site_id": SITE, **args}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return _exact(response.text)["results"]

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await _post_json(
            self.client, f"/api/v1/{path}", body, params={"site_id": SITE}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        results: dict[str, Any] = _exact(response.text)["results"]
        return results

    async def goals(self, **args: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._get("goals", **args)
        # Rates are plain JSON floats on both doors; only money is read as Decimal.
        return [{**row, "conversion_rate": float(row["conversion_rate"])} for row in rows]

    async def goal(self, name: str, **args: Any) -> dict[str, Any]:
        rows = await self.goals(limit=1000, **args)
        row = next((r for r in rows if r["goal_name"] == name), None)
        zero = {"goal_name": name, "unique_visitors": 0, "completion_count": 0}
        return row or {**zero, "conversion_rate": 0.0}

    async def completions(self, name: str, *, page: int, **args: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            batch = await self._get(
                f"goals/{name}/completions", limit=page, offset=len(items), **args
            )
            items += batch
            if len(batch) < page:
                return items

    async def revenue(self, **args: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._get("revenue", **args)
        return {**result, "conversion_rate": float(result["conversion_rate"])}

    async def timeseries(self, **args: Any) -> list[dict[str, Any]]:
        if "granularity" in args:
            args["granularity"] = args["granularity"].lower()
        points: list[dict[str, Any]] = await self._get("revenue/timeseries", **args)
        return points

    async def create_goal(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post("goals", body)

    async def create_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post("payments", body)


GOAL_FIELDS = "name uniqueVisitors completionCount conversionRate"
RANGE_ARGS = "$start: String, $end: String, $timezone: String"
RANGE_VARS = "start: $start, end: $end, timezone: $timezone"


class GraphQLDoor:
    """``/graphql``, answers reshaped to REST's names."""

    name = "graphql"

    def __init__(self, client: httpx.AsyncClient, key: IssuedKey) -> None:
        self.client, self.headers = client, bearer(key)

    async def _run(self, query: str, **variables: Any) -> Any:
        response = await _post_json(
            self.client,
            "/graphql",
            {"query": query, "variables": {"siteId": SITE, **variables}},
            headers=self.headers,
        )
        body = response.json()  # money is a string here, so plain floats are only rates
        assert response.status_code == 200, body
        assert "errors" not in body, body
        return body["data"]

    @staticmethod
    def _goal_row(goal: dict[str, Any]) -> dict[str, Any]:
        return {
            "goal_name": goal["name"],
            "unique_visitors": goal["uniqueVisitors"],
            "completion_count": goal["completionCount"],
            "conversion_rate": goal["conversionRate"],
        }

    async def goals(self, **args: Any) -> list[dict[str, Any]]:
        query = f"""query($siteId: String!, {RANGE_ARGS}, $limit: Int, $offset: Int) {{
            goals(siteId: $siteId, {RANGE_VARS}, limit: $limit, offset: $offset) {{ {GOAL_FIELDS} }}
        }}"""
        data = await self._run(query, **args)
        return [self._goal_row(g) for g in data["goals"]]

    async def goal(self, name: str, **args: Any) -> dict[str, Any]:
        query = f"""query($siteId: String!, $name: String!, {RANGE_ARGS}) {{
            goal(siteId: $siteId, name: $name, {RANGE_VARS}) {{ {GOAL_FIELDS} }}
        }}"""
        data = await self._run(query, name=name, **args)
        return self._goal_row(data["goal"])

    async def completions(self, name: str, *, page: int, **args: Any) -> list[dict[str, Any]]:
        fields = " ".join(_camel(f) for f in COMPLETION_FIELDS)
        query = f"""query($siteId: String!, $name: String!, {RANGE_ARGS}, $first: Int,
                          $after: String) {{
            goal(siteId: $siteId, name: $name, {RANGE_VARS}) {{
                completions(first: $first, after: $after) {{
                    totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {fields} }} }}
                }}
            }}
        }}"""
        items: list[dict[str, Any]] = []
        after = None
        while True:
            data = await self._run(query, name=name, first=page, after=after, **args)
            connection = data["goal"]["completions"]
            items += [
                {f: edge["node"][_camel(f)] for f in COMPLETION_FIELDS}
                for edge in connection["edges"]
            ]
            assert connection["totalCount"] >= len(items)
            if not connection["pageInfo"]["hasNextPage"]:
                assert connection["totalCount"] == len(items)
                return items
            after = connection["pageInfo"]["endCursor"]

    async def revenue(self, **args: Any) -> dict[str, Any]:
        query = f"""query($siteId: String!, {RANGE_ARGS}) {{
            revenue(siteId: $siteId, {RANGE_VARS}) {{ totalRevenue mrr conversionRate }}
        }}"""
        summary = (await self._run(query, **args))["revenue"]
        # Money travels as exact strings; REST's numbers were read as Decimal too.
        return {
            "total_revenue": Decimal(summary["totalRevenue"]),
            "mrr": Decimal(summary["mrr"]),
            "conversion_rate": summary["conversionRate"],
        }

    async def timeseries(self, **args: Any) -> list[dict[str, Any]]:
        query = f"""query($siteId: String!, {RANGE_ARGS}, $granularity: Granularity) {{
            revenueTimeseries(siteId: $siteId, {RANGE_VARS}, granularity: $granularity) {{
                period newRevenue refundRevenue
            }}
        }}"""
        points = (await self._run(query, **args))["revenueTimeseries"]
        return [
            {
                "period": p["period"],
                "new_revenue": Decimal(p["newRevenue"]),
                "refund_revenue": Decimal(p["refundRevenue"]),
            }
            for p in points
        ]

    async def create_goal(self, body: dict[str, Any]) -> dict[str, Any]:
        query = """mutation($siteId: String!, $input: CreateGoalInput!) {
            createGoal(siteId: $siteId, input: $input) { created goalName userErrors { code } }
        }"""
        payload = (await self._run(query, input={_camel(k): v for k, v in body.items()}))[
            "createGoal"
        ]
        assert payload["userErrors"] == []
        return {"created": payload["created"], "goal_name": payload["goalName"]}

    async def create_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        query = """mutation($siteId: String!, $input: CreatePaymentInput!) {
            createPayment(siteId: $siteId, input: $input) {
                created transactionId userErrors { code } payment { transactionId amount }
            }
        }"""
        given = {_camel(k): v for k, v in body.items()}
        if "paymentType" in given:
            given["paymentType"] = given["paymentType"].upper()
        payload = (await self._run(query, input=given))["createPayment"]
        assert payload["userErrors"] == []
        assert payload["payment"]["transactionId"] == payload["transactionId"]
        return {"created": payload["created"], "transaction_id": payload["transactionId"]}


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, client: httpx.AsyncClient, key: IssuedKey) -> FrontDoor:
    """The REST or the GraphQL front door, with a Read & Write key of ``ds_test``."""
    doors: dict[str, type[Rest] | type[GraphQLDoor]] = {"rest": Rest, "graphql": GraphQLDoor}
    return doors[request.param](client, key)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def march(database: Database, client: httpx.AsyncClient, key: IssuedKey) -> None:
    """Visitors, goals and payments in March 2026, written through the resolvers."""
    # v1's first touch comes from the tracker: Google, Chrome on a Mac.
    response = await client.post(
        "/api/events",
        json={
            "website_id": SITE,
            "visitor_id": "v1",
            "session_id": "s1",
            "event_type": "pageview",
            "url": "https://example.com/",
            "hostname": "example.com",
            "pathname": "/",
            "referrer": "https://www.google.com/",
        },
        headers={"user-agent": CHROME_MAC},
    )
    assert response.status_code == 202, response.text
    for n in range(2, 5):
        await make_pageview(database, visitor_id=f"v{n}", at=at(f"2026-03-0{n + 1}T09:00:00"))
    goals = [
        ("signup", "v1", "2026-03-02T10:00:00Z"),
        ("signup", "v1", "2026-03-05T10:00:00Z"),
        ("signup", "v2", "2026-03-03T10:00:00Z"),
        ("signup", "v5", "2026-03-20T10:00:00Z"),
        ("purchase", "v1", "2026-03-10T10:00:00Z"),
        ("newsletter", "v_feb", "2026-02-21T10:00:00Z"),
    ]
    payments = [
        PaymentIn("v1", "100.00", "USD", "t1", paid_at="2026-03-10T12:00:00Z"),
        PaymentIn("v2", "49.99", "USD", "t2", "recurring", paid_at="2026-03-15T12:00:00Z"),
        PaymentIn(
            "v1",
            "25.00",
            "USD",
            "t3",
            "refund",
            paid_at="2026-03-12T12:00:00Z",
            original_transaction_id="t1",
        ),
    ]
    async with database.write() as session:
        for name, visitor, completed_at in goals:
            await goal_resolvers.record_goal(
                session,
                site_id=SITE,
                goal=GoalIn(name, visitor, metadata={"n": 1}, completed_at=completed_at),
            )
        site = await require_site(session, SITE)
        for payment in payments:
            await payment_resolvers.record_payment(session, site=site, payment=payment)


pytestmark = pytest.mark.usefixtures("march")


async def test_goals(door: FrontDoor) -> None:
    assert await door.goals(**MARCH) == [
        {
            "goal_name": "signup",
            "unique_visitors": 3,
            "completion_count": 4,
            "conversion_rate": 0.6,
        },
        {
            "goal_name": "purchase",
            "unique_visitors": 1,
            "completion_count": 1,
            "conversion_rate": 0.2,
        },
        {
            "goal_name": "newsletter",
            "unique_visitors": 0,
            "completion_count": 0,
            "conversion_rate": 0,
        },
    ]
    assert [g["goal_name"] for g in await door.goals(**MARCH, limit=1, offset=1)] == ["purchase"]


async def test_one_goal(door: FrontDoor) -> None:
    assert await door.goal("signup", **MARCH) == {
        "goal_name": "signup",
        "unique_visitors": 3,
        "completion_count": 4,
        "conversion_rate": 0.6,
    }
    assert await door.goal("never_recorded", **MARCH) == {
        "goal_name": "never_recorded",
        "unique_visitors": 0,
        "completion_count": 0,
        "conversion_rate": 0.0,
    }


async def test_completions(door: FrontDoor) -> None:
    completions = await door.completions("signup", page=3, **MARCH)
    assert [(c["visitor_id"], c["completed_at"]) for c in completions] == [
        ("v5", "2026-03-20T10:00:00Z"),
        ("v1", "2026-03-05T10:00:00Z"),
        ("v2", "2026-03-03T10:00:00Z"),
        ("v1", "2026-03-02T10:00:00Z"),
    ]
    first_touch = {k: completions[1][k] for k in ("source", "browser", "os", "device_type")}
    assert first_touch == {
        "source": "google.com",
        "browser": "Chrome",
        "os": "macOS",
        "device_type": "desktop",
    }
    assert await door.completions("never_recorded", page=10, **MARCH) == []


async def test_revenue(door: FrontDoor) -> None:
    assert await door.revenue(**MARCH) == {
        "total_revenue": Decimal("124.99"),
        "mrr": Decimal("49.99"),
        "conversion_rate": 0.4,
    }


async def test_timeseries(door: FrontDoor) -> None:
    points = await door.timeseries(**MARCH, granularity="DAY")
    assert len(points) == 26
    busy = {
        p["period"]: (p["new_revenue"], p["refund_revenue"])
        for p in points
        if any((p["new_revenue"], p["refund_revenue"]))
    }
    assert busy == {
        "2026-03-10": (Decimal("100.00"), Decimal("0.00")),
        "2026-03-12": (Decimal("0.00"), Decimal("25.00")),
        "2026-03-15": (Decimal("49.99"), Decimal("0.00")),
    }
    weeks = await door.timeseries(**MARCH, timezone="America/New_York", granularity="WEEK")
    assert [p["period"] for p in weeks] == [
        "2026-02-23",
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
    ]


async def test_create_goal(door: FrontDoor) -> None:
    created = await door.create_goal(
        {"name": "Trial Started", "visitor_id": "w1", "metadata": {"plan": "pro", "seats": 3}}
    )
    assert created == {"created": True, "goal_name": "trial_started"}
    # The last 30 days hold w1 and v1 (v1's tracked pageview was just now).
    assert await door.goal("trial_started") == {
        "goal_name": "trial_started",
        "unique_visitors": 1,
        "completion_count": 1,
        "conversion_rate": 0.5,
    }


async def test_create_payment_and_replay(door: FrontDoor) -> None:
    body = {
        "visitor_id": "w1",
        "amount": Decimal("19.90"),
        "currency": "usd",
        "transaction_id": "tw",
    }
    assert await door.create_payment(body) == {"created": True, "transaction_id": "tw"}
    assert await door.create_payment(body) == {"created": False, "transaction_id": "tw"}
    refund = {
        "visitor_id": "w1",
        "amount": "4.90",
        "currency": "USD",
        "transaction_id": "tw_refund",
        "payment_type": "refund",
        "original_transaction_id": "tw",
    }
    assert await door.create_payment(refund) == {"created": True, "transaction_id": "tw_refund"}
    revenue = await door.revenue()
    assert revenue["total_revenue"] == Decimal("15.00")


async def test_every_read_is_identical_through_both_doors(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    rest, graphql = Rest(client, key), GraphQLDoor(client, key)
    ranges: list[dict[str, Any]] = [
        MARCH,
        {},
        {**MARCH, "timezone": "America/New_York"},
        {"start": "2026-03-05T00:00:00", "end": "2026-03-20", "timezone": "Asia/Kolkata"},
    ]
    for args in ranges:
        for read in ("goals", "revenue"):
            assert await getattr(rest, read)(**args) == await getattr(graphql, read)(**args)
        for name in ("signup", "purchase", "newsletter", "nope"):
            assert await rest.goal(name, **args) == await graphql.goal(name, **args)
            assert await rest.completions(name, page=2, **args) == await graphql.completions(
                name, page=2, **args
            )
        for grain in ("HOUR", "DAY", "WEEK", "MONTH"):
            assert await rest.timeseries(**args, granularity=grain) == await graphql.timeseries(
                **args, granularity=grain
            )
