"""The payments ledger and deletes (CONTRACT §12), REST and GraphQL on the same data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from datasaas.resolvers.sites import Scope
from datasaas.storage.engine import Database
from datasaas.storage.models import ActivityBitmap
from tests.factories import bearer, make_key, make_pageview, make_site, row_counts

LEDGER_FIELDS = [
    "transaction_id",
    "visitor_id",
    "amount",
    "currency",
    "reporting_amount",
    "reporting_currency",
    "fx_rate",
    "payment_type",
    "product_name",
    "paid_at",
    "original_transaction_id",
    "refunded_amount",
    "billing_interval",
    "billing_interval_count",
    "provider",
    "source",
    "country",
    "device_type",
]
PAYMENTS = """
query($after: String, $type: PaymentType, $first: Int = 100) {
  payments(siteId: "ds_test", start: "2025-01-01", end: "2025-12-31", paymentType: $type,
           first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { transactionId visitorId amount currency reportingAmount
      reportingCurrency fxRate paymentType productName paidAt originalTransactionId
      refundedAmount billingInterval billingIntervalCount provider source country deviceType } }
  }
}"""
DELETE = """
mutation($id: String!) {
  deletePayment(siteId: "ds_test", transactionId: $id) {
    deleted transactionId userErrors { field message code }
  }
}"""


@pytest.fixture
async def headers(database: Database) -> dict[str, str]:
    await make_site(database)
    return bearer(await make_key(database))


async def pay(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> None:
    payload = {"visitor_id": "v1", "currency": "USD", **body}
    response = await client.post("/api/v1/payments?site_id=ds_test", headers=headers, json=payload)
    assert response.status_code == 200, response.text


async def ledger(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> Any:
    response = await client.get(
        f"/api/v1/payments?site_id=ds_test&start=2025-01-01&end=2025-12-31{query}",
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


async def graphql(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, **variables: Any
) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
async def three(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await pay(
        client,
        headers,
        amount="120.00",
        transaction_id="sub",
        payment_type="recurring",
        billing_interval="year",
        product_name="Pro",
        paid_at="2025-03-01T10:00:00Z",
    )
    await pay(client, headers, amount="9.99", transaction_id="one", paid_at="2025-03-02T10:00:00Z")
    await pay(
        client,
        headers,
        amount="20.00",
        transaction_id="ref",
        payment_type="refund",
        original_transaction_id="sub",
        paid_at="2025-03-03T10:00:00Z",
    )


@pytest.mark.usefixtures("three")
async def test_ledger_lists_every_field_newest_first(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = await ledger(client, headers)
    items = body["results"]
    assert [item["transaction_id"] for item in items] == ["ref", "one", "sub"]
    assert all(list(item) == LEDGER_FIELDS for item in items)
    sub = items[2]
    assert sub == {
        "transaction_id": "sub",
        "visitor_id": "v1",
        "amount": Decimal("120.00"),
        "currency": "USD",
        "reporting_amount": Decimal("120.00"),
        "reporting_currency": "USD",
        "fx_rate": "1",
        "payment_type": "recurring",
        "product_name": "Pro",
        "paid_at": "2025-03-01T10:00:00Z",
        "original_transaction_id": None,
        "refunded_amount": Decimal("20.00"),
        "billing_interval": "year",
        "billing_interval_count": 1,
        "provider": "api",
        "source": None,
        "country": None,
        "device_type": None,
    }
    assert items[0]["billing_interval"] is None
    assert items[0]["original_transaction_id"] == "sub"
    assert body["meta"]["limit"] == 100
    assert body["meta"]["offset"] == 0


@pytest.mark.usefixtures("three")
async def test_ledger_type_range_and_pages(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    refunds = await ledger(client, headers, "&payment_type=refund")
    assert [item["transaction_id"] for item in refunds["results"]] == ["ref"]
    page = await ledger(client, headers, "&limit=1&offset=1")
    assert [item["transaction_id"] for item in page["results"]] == ["one"]
    narrow = await ledger(client, headers, "&start=2025-03-02&end=2025-03-02")
    assert [item["transaction_id"] for item in narrow["results"]] == ["one"]
    response = await client.get(
        "/api/v1/payments?site_id=ds_test&payment_type=gift", headers=headers
    )
    assert response.status_code == 400


@pytest.mark.usefixtures("three")
async def test_rest_and_graphql_ledgers_agree(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    rest = (await ledger(client, headers))["results"]
    data = await graphql(client, headers, PAYMENTS)
    nodes = [edge["node"] for edge in data["payments"]["edges"]]
    assert data["payments"]["totalCount"] == 3
    for item, node in zip(rest, nodes, strict=True):
        assert node["transactionId"] == item["transaction_id"]
        assert Decimal(node["amount"]) == item["amount"]
        assert Decimal(node["refundedAmount"]) == item["refunded_amount"]
        assert node["paymentType"].lower() == item["payment_type"]
        assert (node["billingInterval"] or "").lower() == (item["billing_interval"] or "")
        assert node["paidAt"] == item["paid_at"]
        assert node["provider"] == item["provider"]


async def test_graphql_paging_is_stable_under_concurrent_inserts(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for day in range(1, 6):
        await pay(
            client,
            headers,
            amount="1.00",
            transaction_id=f"p{day}",
            paid_at=f"2025-04-0{day}T00:00:00Z",
        )
    first = (await graphql(client, headers, PAYMENTS, first=2))["payments"]
    assert [e["node"]["transactionId"] for e in first["edges"]] == ["p5", "p4"]
    assert first["pageInfo"]["hasNextPage"] is True
    # Newer and same-instant payments arrive between the pages.
    await pay(client, headers, amount="1.00", transaction_id="new", paid_at="2025-04-06T00:00:00Z")
    await pay(client, headers, amount="1.00", transaction_id="tie", paid_at="2025-04-04T00:00:00Z")
    seen = [e["node"]["transactionId"] for e in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after:
        page = (await graphql(client, headers, PAYMENTS, first=2, after=after))["payments"]
        seen += [e["node"]["transactionId"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == ["p5", "p4", "p3", "p2", "p1"]
    assert page["totalCount"] == 7


@pytest.mark.usefixtures("three")
async def test_delete_refuses_while_refunds_name_it_then_deletes(
    database: Database, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    url = "/api/v1/payments/{}?site_id=ds_test"
    refused = await client.delete(url.format("sub"), headers=headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"
    missing = await client.delete(url.format("nope"), headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    before = await row_counts(database)
    for transaction in ("ref", "sub"):
        response = await client.delete(url.format(transaction), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "results": {"deleted": True, "transaction_id": transaction},
            "meta": {"site_id": "ds_test"},
        }
    assert (await row_counts(database))["payment"] == before["payment"] - 2
    assert [i["transaction_id"] for i in (await ledger(client, headers))["results"]] == ["one"]


@pytest.mark.usefixtures("three")
async def test_delete_needs_a_read_write_key(database: Database, client: httpx.AsyncClient) -> None:
    read = bearer(await make_key(database, scope=Scope.READ))
    response = await client.delete("/api/v1/payments/one?site_id=ds_test", headers=read)
    assert response.status_code == 403
    data = await graphql(client, read, "{ __typename }")
    assert data == {"__typename": "Query"}


@pytest.mark.usefixtures("three")
async def test_graphql_delete_payment_user_errors(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    missing = (await graphql(client, headers, DELETE, id="nope"))["deletePayment"]
    assert missing["deleted"] is False
    assert [e["code"] for e in missing["userErrors"]] == ["NOT_FOUND"]
    refused = (await graphql(client, headers, DELETE, id="sub"))["deletePayment"]
    assert [e["code"] for e in refused["userErrors"]] == ["CONFLICT"]
    done = (await graphql(client, headers, DELETE, id="one"))["deletePayment"]
    assert done == {"deleted": True, "transactionId": "one", "userErrors": []}


async def test_deleting_a_backdated_only_activity_lowers_cached_visitors(
    database: Database, client: httpx.AsyncClient, headers: dict[str, str], app: FastAPI
) -> None:
    day = (datetime.now(UTC) - timedelta(days=10)).replace(hour=12, minute=0, second=0)
    await make_pageview(database, visitor_id="browser", at=day)
    await pay(
        client,
        headers,
        visitor_id="payer",
        amount="50.00",
        transaction_id="late",
        paid_at=day.isoformat(),
    )
    # A second payment of another visitor in the same slot keeps that slot alive.
    await pay(
        client,
        headers,
        visitor_id="browser",
        amount="5.00",
        transaction_id="stays",
        paid_at=(day + timedelta(minutes=1)).isoformat(),
    )
    start, end = (day - timedelta(days=2)).date(), (day + timedelta(days=2)).date()
    url = f"/api/v1/revenue?site_id=ds_test&start={start}&end={end}"
    gql = (
        f'{{ revenue(siteId: "ds_test", start: "{start}", end: "{end}") '
        "{ visitors payingVisitors totalRevenue } }"
    )
    assert (await graphql(client, headers, gql))["revenue"] == {
        "visitors": 2,
        "payingVisitors": 2,
        "totalRevenue": "55.00",
    }
    first = await client.get(url, headers=headers)  # read twice: the days are now cached
    assert '"total_revenue":55.00' in first.text
    await app.state.database.activity_cache.drain()  # ... and stored (in the background)
    async with database.read() as session:
        assert await session.scalar(select(func.count()).select_from(ActivityBitmap))
    deleted = await client.delete("/api/v1/payments/late?site_id=ds_test", headers=headers)
    assert deleted.status_code == 200
    assert (await graphql(client, headers, gql))["revenue"] == {
        "visitors": 1,
        "payingVisitors": 1,
        "totalRevenue": "5.00",
    }
    after = await client.get(url, headers=headers)
    assert '"total_revenue":5.00' in after.text
