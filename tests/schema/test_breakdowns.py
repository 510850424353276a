"""Breakdowns (CONTRACT §11) through both doors, on the population of ``test_filters``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from datasaas.resolvers.breakdowns import per_visitor
from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from tests.factories import bearer
from tests.schema.conftest import SITE, StatementCounter
from tests.schema.test_filters import RANGE, populate

REVENUE_FIELDS = [
    "value",
    "visitors",
    "paying_visitors",
    "new_revenue",
    "refund_revenue",
    "total_revenue",
    "conversion_rate",
    "revenue_per_visitor",
]
GOAL_FIELDS = ["value", "visitors", "unique_visitors", "completion_count", "conversion_rate"]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class Door:
    """Breakdowns in REST's shape (money as Decimal) from either door."""

    def __init__(self, name: str, client: httpx.AsyncClient, key: IssuedKey) -> None:
        self.name, self.client, self.headers = name, client, bearer(key)

    async def _rest(self, path: str, **params: str) -> Any:
        query = {"site_id": SITE, **RANGE, **params}
        response = await self.client.get(f"/api/v1/{path}", params=query, headers=self.headers)
        assert response.status_code == 200, response.text
        return json.loads(response.text, parse_float=Decimal)

    async def _graphql(self, query: str) -> Any:
        response = await self.client.post("/graphql", json={"query": query}, headers=self.headers)
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    @staticmethod
    def _rows(rows: list[dict[str, Any]], money: tuple[str, ...]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            snake = {_snake(k): v for k, v in row.items()}
            out.append({k: Decimal(v) if k in money else v for k, v in snake.items()})
        return out

    async def revenue(self, dimension: str, filters: str = "") -> list[dict[str, Any]]:
        if self.name == "rest":
            params = dict(p.split("=") for p in filters.split("&") if p)
            body = await self._rest("revenue/breakdown", dimension=dimension, **params)
            assert body["meta"]["dimension"] == dimension
            assert body["meta"]["currency"] == "USD"
            return [{**r, "conversion_rate": float(r["conversion_rate"])} for r in body["results"]]
        graphql_filters = '[{dimension: DEVICE_TYPE, values: ["mobile"]}]' if filters else "[]"
        data = await self._graphql(
            f"""{{ revenueBreakdown(siteId: "ds_test", dimension: {dimension.upper()},
                   start: "{RANGE["start"]}", end: "{RANGE["end"]}", filters: {graphql_filters})
                 {{ value visitors payingVisitors newRevenue refundRevenue totalRevenue
                    conversionRate revenuePerVisitor }} }}"""
        )
        money = ("new_revenue", "refund_revenue", "total_revenue", "revenue_per_visitor")
        return self._rows(data["revenueBreakdown"], money)

    async def goal(self, dimension: str) -> list[dict[str, Any]]:
        if self.name == "rest":
            body = await self._rest("goals/signup/breakdown", dimension=dimension)
            assert body["meta"]["goal_name"] == "signup"
            return [{**r, "conversion_rate": float(r["conversion_rate"])} for r in body["results"]]
        data = await self._graphql(
            f"""{{ goal(siteId: "ds_test", name: "signup", start: "{RANGE["start"]}",
                        end: "{RANGE["end"]}") {{
                   breakdown(dimension: {dimension.upper()}) {{
                     value visitors uniqueVisitors completionCount conversionRate }} }} }}"""
        )
        return self._rows(data["goal"]["breakdown"], ())


@pytest.fixture(params=["rest", "graphql"])
async def door(
    request: pytest.FixtureRequest, database: Database, client: httpx.AsyncClient, key: IssuedKey
) -> Door:
    await populate(database, client, key)
    return Door(request.param, client, key)


def _revenue_row(value: str | None, visitors: int, paying: int, new: str, refund: str) -> Any:
    total = Decimal(new) - Decimal(refund)
    return {
        "value": value,
        "visitors": visitors,
        "paying_visitors": paying,
        "new_revenue": Decimal(new),
        "refund_revenue": Decimal(refund),
        "total_revenue": total,
        "conversion_rate": round(paying / visitors, 4),
        "revenue_per_visitor": (total / visitors).quantize(Decimal("0.01")),
    }


async def test_revenue_by_source_rows_order_and_partition(door: Door) -> None:
    rows = await door.revenue("source")
    assert all(list(row) == REVENUE_FIELDS for row in rows)
    assert rows == [
        _revenue_row("google.com", 1, 1, "100.00", "0.00"),
        _revenue_row("Google.com", 1, 1, "50.00", "0.00"),
        _revenue_row(None, 2, 1, "20.00", "0.00"),  # c (direct) and e (server-side only)
        _revenue_row("news.ycombinator.com", 1, 1, "10.00", "5.00"),
    ]
    # The rows partition the range's visitors, the null row included.
    assert sum(row["visitors"] for row in rows) == 5


async def test_revenue_by_country_and_filtered(door: Door) -> None:
    by_country = await door.revenue("country")
    assert [row["value"] for row in by_country] == ["United States", "Germany", None, "Canada"]
    mobile = await door.revenue("source", "device_type[is]=mobile")
    assert [(row["value"], row["visitors"]) for row in mobile] == [
        ("google.com", 1),
        ("news.ycombinator.com", 1),
        (None, 1),
    ]
    assert sum(row["visitors"] for row in mobile) == 3


async def test_goal_breakdown_orders_null_last_on_ties(door: Door) -> None:
    rows = await door.goal("device_type")
    assert all(list(row) == GOAL_FIELDS for row in rows)
    assert rows == [
        {
            "value": "mobile",
            "visitors": 3,
            "unique_visitors": 2,
            "completion_count": 3,
            "conversion_rate": 0.6667,
        },
        {
            "value": "desktop",
            "visitors": 1,
            "unique_visitors": 0,
            "completion_count": 0,
            "conversion_rate": 0.0,
        },
        {
            "value": None,
            "visitors": 1,
            "unique_visitors": 0,
            "completion_count": 0,
            "conversion_rate": 0.0,
        },
    ]
    by_country = await door.goal("country")
    assert [row["value"] for row in by_country] == ["Canada", None, "Germany", "United States"]
    assert sum(row["visitors"] for row in by_country) == 5


@pytest.mark.parametrize("path", ["revenue/breakdown", "goals/signup/breakdown"])
@pytest.mark.parametrize("dimension", [None, "", "colour", "SOURCE"])
async def test_missing_or_unknown_dimension_is_400(
    client: httpx.AsyncClient, key: IssuedKey, path: str, dimension: str | None
) -> None:
    params = {"site_id": SITE} | ({} if dimension is None else {"dimension": dimension})
    response = await client.get(f"/api/v1/{path}", params=params, headers=bearer(key))
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == ["dimension"]


def test_revenue_per_visitor_rounds_half_even() -> None:
    assert per_visitor(5, 2, "USD") == Decimal("0.02")
    assert per_visitor(15, 2, "USD") == Decimal("0.08")
    assert per_visitor(5, 2, "JPY") == Decimal("2")
    assert per_visitor(-5, 2, "USD") == Decimal("-0.02")
    assert per_visitor(7, 0, "USD") == Decimal("0.00")


async def test_goal_breakdowns_are_batched(
    client: httpx.AsyncClient, key: IssuedKey, sql: StatementCounter, app: FastAPI
) -> None:
    headers = bearer(key)
    query = (
        '{ goals(siteId: "ds_test", start: "2026-03-01", end: "2026-03-26") '
        "{ name breakdown(dimension: SOURCE) { value completionCount } } }"
    )

    async def statements(goals: int) -> int:
        for index in range(goals):
            response = await client.post(
                f"/api/v1/goals?site_id={SITE}",
                json={"name": f"g{index}", "visitor_id": f"v{index}"},
                headers=headers,
            )
            assert response.status_code == 200
        # Bitmaps built by earlier reads are stored in the background: let that finish first,
        # and count what this read leaves behind too, so the count does not depend on timing.
        await app.state.database.activity_cache.drain()
        sql.reset()
        response = await client.post("/graphql", json={"query": query}, headers=headers)
        assert "errors" not in response.json()
        await app.state.database.activity_cache.drain()
        return sql.count

    await statements(0)  # the first read builds and stores the cached bitmaps
    one = await statements(1)
    many = await statements(10)
    assert many == one


async def test_readme_question_gives_the_same_numbers_through_both_doors(
    database: Database, client: httpx.AsyncClient, key: IssuedKey
) -> None:
    """Revenue, payers and conversion by source, New York time, mobile visitors only."""
    await populate(database, client, key)
    headers = bearer(key)
    span = 'start: "2026-03-01", end: "2026-03-26", timezone: "America/New_York"'
    response = await client.post(
        "/graphql",
        json={
            "query": f"""{{ revenueBreakdown(siteId: "ds_test", dimension: SOURCE, {span},
                filters: [{{dimension: DEVICE_TYPE, operator: IS, values: ["mobile"]}}]) {{
                value visitors payingVisitors newRevenue refundRevenue totalRevenue
                conversionRate revenuePerVisitor }} }}"""
        },
        headers=headers,
    )
    graphql_rows = response.json()["data"]["revenueBreakdown"]
    rest = await client.get(
        "/api/v1/revenue/breakdown",
        params={
            "site_id": SITE,
            "dimension": "source",
            "start": "2026-03-01",
            "end": "2026-03-26",
            "timezone": "America/New_York",
            "device_type[is]": "mobile",
        },
        headers=headers,
    )
    body = json.loads(rest.text, parse_float=Decimal)
    assert body["meta"]["timezone"] == "America/New_York"
    money = ("new_revenue", "refund_revenue", "total_revenue", "revenue_per_visitor")
    assert Door._rows(graphql_rows, money) == [
        {**row, "conversion_rate": float(row["conversion_rate"])} for row in body["results"]
    ]
    assert [row["value"] for row in body["results"]] == [
        "google.com",
        "news.ycombinator.com",
        None,
    ]
    assert body["results"][0]["paying_visitors"] == 1
