"""Filters (CONTRACT §11) on every read, REST's bracket syntax and GraphQL's FilterInput alike.

Every test runs through both doors (``door``) and both backends, on the population below, and
checks numbers worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from datasaas.resolvers.sites import IssuedKey
from datasaas.storage import visitors as visitor_store
from datasaas.storage.engine import Database
from tests.factories import bearer, make_pageview, visitor_by_uid
from tests.schema.conftest import SITE

Flt = tuple[str, str, list[str | None]]
RANGE = {"start": "2026-03-01", "end": "2026-03-26"}
DAY = datetime(2026, 3, 10, 12, tzinfo=UTC)
# uid: (source, country, device_type)
PEOPLE: dict[str, tuple[str | None, str | None, str | None]] = {
    "a": ("google.com", "United States", "mobile"),
    "b": ("Google.com", "Germany", "desktop"),
    "c": (None, None, "mobile"),
    "d": ("news.ycombinator.com", "Canada", "mobile"),
}
# "e" only ever pays server-side: every attribute is null.


async def _person(database: Database, uid: str, attrs: tuple[str | None, ...]) -> None:
    await make_pageview(database, visitor_id=uid, at=DAY)
    async with database.write() as session:
        visitor = await visitor_by_uid(session, site_id=SITE, uid=uid)
        assert visitor is not None
        assert visitor.id is not None
        source, country, device = attrs
        touch = {"source": source, "country": country, "device_type": device}
        await visitor_store.set_first_touches(session, at=DAY, touches={visitor.id: touch})


class Door:
    """One front door; ``read`` returns the numbers of every read under some filters."""

    def __init__(self, name: str, client: httpx.AsyncClient, key: IssuedKey) -> None:
        self.name, self.client, self.headers = name, client, bearer(key)

    async def rest(self, path: str, filters: list[Flt], **params: Any) -> httpx.Response:
        query: list[tuple[str, str]] = [("site_id", SITE), *RANGE.items()]
        query += [(k, str(v)) for k, v in params.items()]
        query += [(f"{d}[{o}]", "|".join(v or "" for v in values)) for d, o, values in filters]
        return await self.client.get(f"/api/v1/{path}", params=query, headers=self.headers)

    async def graphql(self, query: str, filters: list[Flt]) -> httpx.Response:
        variables = {
            "filters": [
                {"dimension": d.upper(), "operator": o.upper(), "values": values}
                for d, o, values in filters
            ]
        }
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )

    async def read(self, filters: list[Flt]) -> dict[str, Any]:
        """visitors, paying, total, mrr, rate, signup (uniques, count), completers, payments."""
        if self.name == "rest":
            goals = (await self.rest("goals", filters)).json()
            revenue = (await self.rest("revenue", filters)).json()["results"]
            completions = (await self.rest("goals/signup/completions", filters)).json()
            ledger = (await self.rest("payments", filters)).json()["results"]
            series = (await self.rest("revenue/timeseries", filters)).json()["results"]
            signup = next(g for g in goals["results"] if g["goal_name"] == "signup")
            return {
                "visitors": goals["meta"]["visitors"],
                "total": Decimal(str(revenue["total_revenue"])),
                "mrr": Decimal(str(revenue["mrr"])),
                "rate": revenue["conversion_rate"],
                "signup": (signup["unique_visitors"], signup["completion_count"]),
                "completers": sorted(c["visitor_id"] for c in completions["results"]),
                "payments": sorted(p["transaction_id"] for p in ledger),
                "series_new": sum(Decimal(str(p["new_revenue"])) for p in series),
            }
        query = """query($filters: [FilterInput!]) {
          revenue(siteId: "ds_test", start: "2026-03-01", end: "2026-03-26", filters: $filters) {
            visitors payingVisitors totalRevenue mrr conversionRate }
          goals(siteId: "ds_test", start: "2026-03-01", end: "2026-03-26", filters: $filters) {
            name uniqueVisitors completionCount }
          goal(siteId: "ds_test", name: "signup", start: "2026-03-01", end: "2026-03-26",
               filters: $filters) {
            uniqueVisitors completions { totalCount edges { node { visitorId } } } }
          payments(siteId: "ds_test", start: "2026-03-01", end: "2026-03-26",
                   filters: $filters) { totalCount edges { node { transactionId } } }
          revenueTimeseries(siteId: "ds_test", start: "2026-03-01", end: "2026-03-26",
                            filters: $filters) { newRevenue }
        }"""
        response = await self.graphql(query, filters)
        body = response.json()
        assert "errors" not in body, body
        data = body["data"]
        signup = next(g for g in data["goals"] if g["name"] == "signup")
        assert data["goal"]["uniqueVisitors"] == signup["uniqueVisitors"]
        completions = data["goal"]["completions"]
        assert completions["totalCount"] == signup["completionCount"]
        assert data["payments"]["totalCount"] == len(data["payments"]["edges"])
        return {
            "visitors": data["revenue"]["visitors"],
            "total": Decimal(data["revenue"]["totalRevenue"]),
            "mrr": Decimal(data["revenue"]["mrr"]),
            "rate": data["revenue"]["conversionRate"],
            "signup": (signup["uniqueVisitors"], signup["completionCount"]),
            "completers": sorted(e["node"]["visitorId"] for e in completions["edges"]),
            "payments": sorted(e["node"]["transactionId"] for e in data["payments"]["edges"]),
            "series_new": sum(Decimal(p["newRevenue"]) for p in data["revenueTimeseries"]),
        }


async def populate(database: Database, client: httpx.AsyncClient, key: IssuedKey) -> None:
    """Visitors a-d with attributes (e is server-side only), their payments and signups."""
    for uid, attrs in PEOPLE.items():
        await _person(database, uid, attrs)
    headers = bearer(key)

    async def post(path: str, **body: Any) -> None:
        response = await client.post(f"/api/v1/{path}?site_id={SITE}", json=body, headers=headers)
        assert response.status_code == 200, response.text

    at = DAY.isoformat()
    await post("payments", visitor_id="a", amount="100.00", currency="USD", transaction_id="pa",
               paid_at=at)  # fmt: skip
    await post("payments", visitor_id="b", amount="50.00", currency="USD", transaction_id="pb",
               payment_type="recurring", paid_at="2026-03-20T00:00:00Z")  # fmt: skip
    await post("payments", visitor_id="d", amount="10.00", currency="USD", transaction_id="pd",
               paid_at=at)  # fmt: skip
    await post("payments", visitor_id="d", amount="5.00", currency="USD", transaction_id="pd_r",
               payment_type="refund", original_transaction_id="pd", paid_at=at)  # fmt: skip
    await post("payments", visitor_id="e", amount="20.00", currency="USD", transaction_id="pe",
               paid_at=at)  # fmt: skip
    for uid in ("c", "d", "d"):
        await post("goals", name="signup", visitor_id=uid, completed_at=at)


@pytest.fixture(params=["rest", "graphql"])
async def door(
    request: pytest.FixtureRequest, database: Database, client: httpx.AsyncClient, key: IssuedKey
) -> Door:
    await populate(database, client, key)
    return Door(request.param, client, key)


async def test_no_filter_counts_everyone(door: Door) -> None:
    read = await door.read([])
    assert read["visitors"] == 5
    assert read["total"] == Decimal("175.00")
    assert read["mrr"] == Decimal("50.00")
    assert read["signup"] == (2, 3)


async def test_is_mobile_narrows_visitors_payers_and_completers(door: Door) -> None:
    read = await door.read([("device_type", "is", ["mobile"])])
    assert read["visitors"] == 3  # a, c, d
    # The sum over the matching visitors' payments: a 100 + d 10 - d's refund 5.
    assert read["total"] == Decimal("105.00")
    assert read["series_new"] == Decimal("110.00")
    assert read["mrr"] == Decimal("0.00")
    assert read["rate"] == 0.6667  # a and d pay, of 3
    assert read["signup"] == (2, 3)
    assert read["completers"] == ["c", "d", "d"]
    assert read["payments"] == ["pa", "pd", "pd_r"]


async def test_is_not_keeps_visitors_without_a_value(door: Door) -> None:
    read = await door.read([("country", "is_not", ["Germany"])])
    assert read["visitors"] == 4  # a, c (no country), d, e (server-side only)
    assert read["payments"] == ["pa", "pd", "pd_r", "pe"]
    assert read["mrr"] == Decimal("0.00")


async def test_is_with_several_values(door: Door) -> None:
    read = await door.read([("country", "is", ["United States", "Canada"])])
    assert read["visitors"] == 2
    assert read["total"] == Decimal("105.00")
    assert read["signup"] == (1, 2)


async def test_empty_value_is_no_value(door: Door) -> None:
    direct = await door.read([("source", "is", [None])])
    assert direct["visitors"] == 2  # c and e
    assert direct["payments"] == ["pe"]
    assert direct["completers"] == ["c"]
    not_direct = await door.read([("source", "is_not", [None])])
    assert not_direct["visitors"] == 3


async def test_contains_is_case_insensitive_and_never_null(door: Door) -> None:
    google = await door.read([("source", "contains", ["GOOGLE"])])
    assert google["visitors"] == 2  # google.com and Google.com
    assert google["mrr"] == Decimal("50.00")
    any_o = await door.read([("source", "contains", ["o"])])
    assert any_o["visitors"] == 3  # a, b, d; never c or e


async def test_is_is_case_sensitive_and_filters_and_together(door: Door) -> None:
    assert (await door.read([("source", "is", ["google.com"])]))["visitors"] == 1
    both = await door.read([("source", "contains", ["google"]), ("device_type", "is", ["mobile"])])
    assert both["visitors"] == 1
    assert both["payments"] == ["pa"]


async def test_unknown_dimension_or_operator_is_400_naming_the_parameter(door: Door) -> None:
    if door.name == "graphql":
        response = await door.graphql(
            'query($filters: [FilterInput!]) { revenue(siteId: "ds_test", filters: $filters) '
            "{ visitors } }",
            [("source", "contains", [None])],
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        unknown = await door.graphql(
            'query($filters: [FilterInput!]) { revenue(siteId: "ds_test", filters: $filters) '
            "{ visitors } }",
            [("colour", "is", ["red"])],
        )
        assert "errors" in unknown.json()
        return
    for name in ("colour[is]", "country[equals]", "country[]", "[is]"):
        for path in ("goals", "revenue", "revenue/timeseries", "payments"):
            response = await door.client.get(
                f"/api/v1/{path}", params={"site_id": SITE, name: "x"}, headers=door.headers
            )
            assert response.status_code == 400, (path, name, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert [d["field"] for d in error["details"]] == [name]
