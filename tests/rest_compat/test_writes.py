"""Writes over REST: transaction replays, refunds, Idempotency-Key, exact money (CONTRACT §6, §7).

Black-box: requests go through the HTTP client and numbers are read back through the GET routes;
the database is read only to count rows and to check what was stored.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from datasaas.resolvers.sites import IssuedKey, Scope
from datasaas.storage.engine import Database
from datasaas.storage.models import (
    Payment,
)
from tests.factories import bearer, make_key, make_site, row_counts

SITE = "ds_test"
GOALS = "/api/v1/goals"
PAYMENTS = "/api/v1/payments"
REVENUE = "/api/v1/revenue"
TIMESERIES = "/api/v1/revenue/timeseries"
JSON = "application/json"


async def payments_stored(database: Database, site_id: str = SITE) -> list[Payment]:
    async with database.read() as session:
        result = await session.execute(
            select(Payment).where(col(Payment.site_id) == site_id).order_by(col(Payment.id))
        )
        return list(result.scalars().all())


def payment_json(
    transaction_id: str,
    amount: str = "49.99",
    *,
    currency: str = "USD",
    visitor_id: str = "v_buyer",
    **extra: Any,
) -> bytes:
    """A payment body with ``amount`` as raw JSON number text."""
    fields = {
        "visitor_id": visitor_id,
        "currency": currency,
        "transaction_id": transaction_id,
        **extra,
    }
    return (json.dumps(fields)[:-1] + f', "amount": {amount}}}').encode()


async def post_payment(
    client: httpx.AsyncClient,
    key: IssuedKey,
    body: bytes,
    *,
    site_id: str = SITE,
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = {**bearer(key), "Content-Type": JSON}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post(PAYMENTS, params={"site_id": site_id}, content=body, headers=headers)


async def post_goal(
    client: httpx.AsyncClient,
    key: IssuedKey,
    body: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = dict(bearer(key))
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post(GOALS, params={"site_id": SITE}, json=body, headers=headers)


async def revenue(client: httpx.AsyncClient, key: IssuedKey, site_id: str = SITE) -> httpx.Response:
    response = await client.get(REVENUE, params={"site_id": site_id}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert "traceback" not in response.text.lower()
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert len(error["message"].strip()) >= 10
    return str(error["message"])


def created(response: httpx.Response, transaction_id: str) -> bool:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"]["transaction_id"] == transaction_id
    assert body["meta"] == {"site_id": SITE}
    flag = body["results"]["created"]
    assert isinstance(flag, bool)
    return flag


# --------------------------------------------------------------------------------------------
# transaction_id replays


async def test_same_payment_twice_counts_once(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    body = payment_json("txn_1", "49.99", product_name="Pro Plan")
    first = await post_payment(client, key, body)
    assert first.json() == {
        "results": {"created": True, "transaction_id": "txn_1"},
        "meta": {"site_id": SITE},
    }
    counts = await row_counts(database)

    second = await post_payment(client, key, body)
    assert second.status_code == 200, second.text
    assert second.json() == {
        "results": {"created": False, "transaction_id": "txn_1"},
        "meta": {"site_id": SITE},
    }
    assert await row_counts(database) == counts
    assert len(await payments_stored(database)) == 1

    summary = await revenue(client, key)
    assert summary.json()["results"]["total_revenue"] == pytest.approx(49.99)
    assert '"total_revenue":49.99' in summary.text


async def test_replay_with_equivalent_spelling_is_still_a_replay(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """49.99 and 49.990, "usd" and "USD" are the same payment."""
    assert created(await post_payment(client, key, payment_json("txn_1", "49.99")), "txn_1")
    again = payment_json("txn_1", "49.990", currency="usd")
    assert created(await post_payment(client, key, again), "txn_1") is False
    assert len(await payments_stored(database)) == 1


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"amount": "50.00"}, id="amount"),
        pytest.param({"currency": "EUR"}, id="currency"),
        pytest.param({"visitor_id": "v_someone_else"}, id="visitor_id"),
        pytest.param({"payment_type": "recurring"}, id="payment_type"),
        pytest.param({"product_name": "Other Plan"}, id="product_name"),
    ],
)
async def test_same_transaction_with_different_fields_is_409(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, changed: dict[str, str]
) -> None:
    fields: dict[str, Any] = {"amount": "49.99", "product_name": "Pro Plan", **changed}
    amount = fields.pop("amount")
    original = payment_json("txn_1", "49.99", product_name="Pro Plan")
    assert created(await post_payment(client, key, original), "txn_1")
    counts = await row_counts(database)

    response = await post_payment(client, key, payment_json("txn_1", amount, **fields))
    message = assert_error(response, 409, "conflict")
    assert "txn_1" in message
    assert await row_counts(database) == counts
    [stored] = await payments_stored(database)
    assert (stored.amount_minor, stored.currency, stored.payment_type) == (4999, "USD", "one_time")
    assert stored.product_name == "Pro Plan"


async def test_same_transaction_id_on_two_sites_is_two_payments(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    await make_site(database, site_id="ds_other", domain="other.example.org")
    other = await make_key(database, site_id="ds_other")
    assert created(await post_payment(client, key, payment_json("txn_1", "10.00")), "txn_1")
    response = await post_payment(client, other, payment_json("txn_1", "20.00"), site_id="ds_other")
    assert response.status_code == 200, response.text
    assert response.json()["results"]["created"] is True
    assert '"total_revenue":10.00' in (await revenue(client, key)).text
    assert '"total_revenue":20.00' in (await revenue(client, other, "ds_other")).text


async def test_twenty_concurrent_identical_posts_make_one_row(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    body = payment_json("txn_race", "25.00", visitor_id="v_race")
    responses = await asyncio.gather(*(post_payment(client, key, body) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    flags = [created(r, "txn_race") for r in responses]
    assert flags.count(True) == 1, flags

    stored = await payments_stored(database)
    assert len(stored) == 1
    assert stored[0].amount_minor == 2500
    counts = await row_counts(database)
    assert counts["payment"] == 1
    assert counts["visitor"] == 1
    assert '"total_revenue":25.00' in (await revenue(client, key)).text


# --------------------------------------------------------------------------------------------
# refunds


async def test_partial_refunds_up_to_the_original(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert created(await post_payment(client, key, payment_json("txn_orig", "100.00")), "txn_orig")

    def refund(txn: str, amount: str) -> bytes:
        return payment_json(txn, amount, payment_type="refund", original_transaction_id="txn_orig")

    assert created(await post_payment(client, key, refund("txn_r1", "40.00")), "txn_r1")
    # Replaying a refund neither counts it twice nor uses up the original.
    assert created(await post_payment(client, key, refund("txn_r1", "40.00")), "txn_r1") is False
    assert created(await post_payment(client, key, refund("txn_r2", "60.00")), "txn_r2")
    counts = await row_counts(database)

    over = await post_payment(client, key, refund("txn_r3", "0.01"))
    message = assert_error(over, 409, "conflict")
    assert "txn_orig" in message
    assert await row_counts(database) == counts

    summary = await revenue(client, key)
    assert '"total_revenue":0.00' in summary.text
    series = await client.get(
        TIMESERIES, params={"site_id": SITE, "granularity": "month"}, headers=bearer(key)
    )
    assert series.status_code == 200, series.text
    points = series.json()["results"]
    assert sum(p["new_revenue"] for p in points) == pytest.approx(100.00)
    assert sum(p["refund_revenue"] for p in points) == pytest.approx(100.00)


async def test_single_refund_over_the_original_is_409(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert created(await post_payment(client, key, payment_json("txn_orig", "100.00")), "txn_orig")
    counts = await row_counts(database)
    response = await post_payment(
        client,
        key,
        payment_json("txn_r1", "100.01", payment_type="refund", original_transaction_id="txn_orig"),
    )
    assert_error(response, 409, "conflict")
    assert await row_counts(database) == counts
    assert '"total_revenue":100.00' in (await revenue(client, key)).text


async def test_concurrent_refunds_never_exceed_the_original(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert created(await post_payment(client, key, payment_json("txn_orig", "100.00")), "txn_orig")
    bodies = [
        payment_json(
            f"txn_r{i}", "30.00", payment_type="refund", original_transaction_id="txn_orig"
        )
        for i in range(6)
    ]
    responses = await asyncio.gather(*(post_payment(client, key, b) for b in bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 409, 409, 409], [r.text for r in responses]
    refunds = [p for p in await payments_stored(database) if p.payment_type == "refund"]
    assert sum(p.amount_minor for p in refunds) == 9000
    assert '"total_revenue":10.00' in (await revenue(client, key)).text


@pytest.mark.parametrize(
    ("original", "refund_currency"),
    [
        pytest.param("txn_unknown", "USD", id="unknown-transaction"),
        pytest.param("txn_refund", "USD", id="names-a-refund"),
        pytest.param("txn_orig", "EUR", id="other-currency"),
        pytest.param("txn_foreign", "USD", id="payment-of-another-site"),
    ],
)
async def test_refund_naming_a_bad_original_is_400(
    client: httpx.AsyncClient,
    key: IssuedKey,
    database: Database,
    original: str,
    refund_currency: str,
) -> None:
    await make_site(database, site_id="ds_other", domain="other.example.org")
    other = await make_key(database, site_id="ds_other")
    foreign = payment_json("txn_foreign", "100.00")
    assert (await post_payment(client, other, foreign, site_id="ds_other")).status_code == 200
    assert created(await post_payment(client, key, payment_json("txn_orig", "100.00")), "txn_orig")
    a_refund = payment_json(
        "txn_refund", "10.00", payment_type="refund", original_transaction_id="txn_orig"
    )
    assert created(await post_payment(client, key, a_refund), "txn_refund")
    counts = await row_counts(database)

    response = await post_payment(
        client,
        key,
        payment_json(
            "txn_new_refund",
            "1.00",
            currency=refund_currency,
            payment_type="refund",
            original_transaction_id=original,
        ),
    )
    assert_error(response, 400, "invalid_request")
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert "original_transaction_id" in fields
    assert await row_counts(database) == counts


# --------------------------------------------------------------------------------------------
# Idempotency-Key


async def test_idempotency_key_replays_goal_and_writes_once(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    body = {"name": "signup", "visitor_id": "v_1", "metadata": {"plan": "pro"}}
    first = await post_goal(client, key, body, idempotency_key="idem-1")
    assert first.status_code == 200, first.text
    second = await post_goal(client, key, body, idempotency_key="idem-1")
    assert second.status_code == 200, second.text
    assert second.content == first.content
    assert second.json() == {
        "results": {"created": True, "goal_name": "signup"},
        "meta": {"site_id": SITE},
    }
    counts = await row_counts(database)
    assert counts["goal_completion"] == 1

    listed = await client.get(GOALS, params={"site_id": SITE}, headers=bearer(key))
    assert [(g["goal_name"], g["completion_count"]) for g in listed.json()["results"]] == [
        ("signup", 1)
    ]


async def test_goal_without_idempotency_key_is_recorded_each_time(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """Control: the single completion above is the key's doing, not a goal-level dedupe."""
    body = {"name": "signup", "visitor_id": "v_1"}
    for _ in range(2):
        assert (await post_goal(client, key, body)).status_code == 200
    assert (await row_counts(database))["goal_completion"] == 2


async def test_idempotency_key_with_a_different_body_is_409(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert (
        await post_goal(client, key, {"name": "signup", "visitor_id": "v_1"}, idempotency_key="k")
    ).status_code == 200
    counts = await row_counts(database)
    response = await post_goal(
        client, key, {"name": "purchase", "visitor_id": "v_1"}, idempotency_key="k"
    )
    assert_error(response, 409, "conflict")
    assert await row_counts(database) == counts


async def test_idempotency_key_is_per_api_key(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    second_key = await make_key(database, site_id=SITE, scope=Scope.READ_WRITE)
    body = {"name": "signup", "visitor_id": "v_1"}
    assert (await post_goal(client, key, body, idempotency_key="shared")).status_code == 200
    response = await post_goal(client, second_key, body, idempotency_key="shared")
    assert response.status_code == 200, response.text
    assert (await row_counts(database))["goal_completion"] == 2
    # A different body under the same key string is no conflict for the other API key either.
    other_body = {"name": "purchase", "visitor_id": "v_2"}
    third_key = await make_key(database, site_id=SITE, scope=Scope.READ_WRITE)
    response = await post_goal(client, third_key, other_body, idempotency_key="shared")
    assert response.status_code == 200, response.text
    assert (await row_counts(database))["goal_completion"] == 3


async def test_idempotency_key_replays_payment_response(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    body = payment_json("txn_idem", "12.34")
    first = await post_payment(client, key, body, idempotency_key="pay-1")
    second = await post_payment(client, key, body, idempotency_key="pay-1")
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    # The original answer, created: true, not a fresh "created": false.
    assert second.content == first.content
    assert second.json()["results"] == {"created": True, "transaction_id": "txn_idem"}
    assert len(await payments_stored(database)) == 1

    conflicting = await post_payment(
        client, key, payment_json("txn_idem_2", "12.34"), idempotency_key="pay-1"
    )
    assert_error(conflicting, 409, "conflict")
    assert len(await payments_stored(database)) == 1


async def test_refused_request_does_not_use_up_the_idempotency_key(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """A 400 is not remembered: fixing the body and retrying under the same key records it."""
    bad = await post_goal(client, key, {"name": "-bad", "visitor_id": "v_1"}, idempotency_key="k")
    assert_error(bad, 400, "invalid_request")
    good = await post_goal(
        client, key, {"name": "signup", "visitor_id": "v_1"}, idempotency_key="k"
    )
    assert good.status_code == 200, good.text
    assert good.json()["results"] == {"created": True, "goal_name": "signup"}
    assert (await row_counts(database))["goal_completion"] == 1


async def test_concurrent_goal_posts_with_one_idempotency_key_write_once(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """A client retrying the same request (same key, same body) always gets the original answer."""
    body = {"name": "signup", "visitor_id": "v_1"}
    responses = await asyncio.gather(
        *(post_goal(client, key, body, idempotency_key="burst") for _ in range(20))
    )
    assert (await row_counts(database))["goal_completion"] == 1
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert {r.content for r in responses} == {responses[0].content}
    assert responses[0].json()["results"] == {"created": True, "goal_name": "signup"}


async def test_concurrent_payment_posts_with_one_idempotency_key_replay_the_original(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    body = payment_json("txn_burst", "25.00")
    responses = await asyncio.gather(
        *(post_payment(client, key, body, idempotency_key="burst") for _ in range(20))
    )
    assert len(await payments_stored(database)) == 1
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert {r.content for r in responses} == {responses[0].content}
    assert responses[0].json()["results"] == {"created": True, "transaction_id": "txn_burst"}


# --------------------------------------------------------------------------------------------
# exact money


async def test_amounts_are_stored_exactly(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    for i in range(3):
        assert created(await post_payment(client, key, payment_json(f"txn_{i}", "0.1")), f"txn_{i}")
    assert [p.amount_minor for p in await payments_stored(database)] == [10, 10, 10]
    summary = await revenue(client, key)
    assert '"total_revenue":0.30' in summary.text
    assert summary.json()["meta"]["currency"] == "USD"


async def test_amount_as_string_and_exponent_are_exact(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert created(await post_payment(client, key, payment_json("txn_a", '"19.99"')), "txn_a")
    assert created(await post_payment(client, key, payment_json("txn_b", "1.5e1")), "txn_b")
    assert created(await post_payment(client, key, payment_json("txn_c", "1000000000")), "txn_c")
    stored = {p.transaction_id: p.amount_minor for p in await payments_stored(database)}
    assert stored == {"txn_a": 1999, "txn_b": 1500, "txn_c": 100_000_000_000}
    assert '"total_revenue":1000000034.99' in (await revenue(client, key)).text


async def test_currency_is_case_insensitive_and_stored_upper_case(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert created(
        await post_payment(client, key, payment_json("txn_1", "5.00", currency="usd")), "txn_1"
    )
    [stored] = await payments_stored(database)
    assert stored.currency == "USD"
    assert stored.reporting_amount_minor == 500
    assert '"total_revenue":5.00' in (await revenue(client, key)).text


async def test_jpy_site_reports_whole_yen(client: httpx.AsyncClient, database: Database) -> None:
    await make_site(database, site_id="ds_jpy", currency="JPY", domain="jp.example.com")
    jpy_key = await make_key(database, site_id="ds_jpy")
    body = payment_json("txn_yen", "1500", currency="JPY")
    response = await post_payment(client, jpy_key, body, site_id="ds_jpy")
    assert response.status_code == 200, response.text
    [stored] = await payments_stored(database, "ds_jpy")
    assert (stored.amount_minor, stored.currency, stored.reporting_amount_minor) == (
        1500,
        "JPY",
        1500,
    )

    summary = await revenue(client, jpy_key, "ds_jpy")
    assert '"total_revenue":1500,' in summary.text
    assert '"mrr":0,' in summary.text
    assert summary.json()["meta"]["currency"] == "JPY"
    series = await client.get(
        TIMESERIES, params={"site_id": "ds_jpy", "granularity": "month"}, headers=bearer(jpy_key)
    )
    assert series.status_code == 200, series.text
    assert '"new_revenue":1500,' in series.text
    assert '"refund_revenue":0}' in series.text
    assert "1500.0" not in series.text


async def test_write_requests_are_announced_to_the_group_commit_while_they_authenticate(
    app: Any, client: httpx.AsyncClient, key: IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch that is due waits for the writes announced before it (group_commit.arriving);
    # a write is announced from its arrival, so its authentication counts as "on its way".
    from datasaas.kit import deps

    seen: list[tuple[str, int]] = []
    authenticate = deps.authenticate_shared

    async def watching(lookups: Any, header: str | None) -> Any:
        seen.append((header or "", app.state.database.group_commit.on_their_way))
        return await authenticate(lookups, header)

    monkeypatch.setattr(deps, "authenticate_shared", watching)
    body = {"name": "signup", "visitor_id": "v1"}
    posted = await client.post(GOALS, params={"site_id": SITE}, json=body, headers=bearer(key))
    read = await client.get(GOALS, params={"site_id": SITE}, headers=bearer(key))
    assert posted.status_code == 200
    assert read.status_code == 200
    assert [count for _, count in seen] == [1, 0]  # the write was announced, the read not
    assert app.state.database.group_commit.on_their_way == 0  # and nothing stays announced
