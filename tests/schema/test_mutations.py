"""GraphQL writes and the auth rules of every root field (CONTRACT §3, §7, §9).

Refused input comes back as ``userErrors`` with the input field path and nothing is stored;
authentication and authorization failures are top-level errors with the REST messages and the
REST statuses (401 with ``WWW-Authenticate``, 403).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from datasaas.money import convert, format_major
from datasaas.resolvers.sites import IssuedKey, revoke_key
from datasaas.storage.engine import Database
from tests.factories import bearer, row_counts
from tests.schema.conftest import OTHER_SITE, SITE, GraphQL

CREATE_GOAL = """
mutation($siteId: String!, $input: CreateGoalInput!) {
  createGoal(siteId: $siteId, input: $input) { created goalName userErrors { field message code } }
}"""

CREATE_PAYMENT = """
mutation($siteId: String!, $input: CreatePaymentInput!) {
  createPayment(siteId: $siteId, input: $input) {
    created
    transactionId
    payment {
      transactionId visitorId amount currency reportingAmount paymentType productName paidAt
    }
    userErrors { field message code }
  }
}"""

GOALS = 'query { goals(siteId: "ds_test") { name completionCount } }'


def payment(**fields: Any) -> dict[str, Any]:
    """A valid CreatePaymentInput; ``fields`` override."""
    return {
        "visitorId": "v1",
        "amount": "49.99",
        "currency": "USD",
        "transactionId": "t1",
        **fields,
    }


async def create_payment(graphql: GraphQL, **fields: Any) -> dict[str, Any]:
    answer = await graphql(CREATE_PAYMENT, {"siteId": SITE, "input": payment(**fields)})
    assert answer.status == 200, answer.body
    assert answer.errors == []
    result: dict[str, Any] = answer.data["createPayment"]
    return result


# ----------------------------------------------------------------------------- goals


async def test_create_goal_records_a_completion(graphql: GraphQL, database: Database) -> None:
    before = await row_counts(database)
    answer = await graphql(
        CREATE_GOAL,
        {
            "siteId": SITE,
            "input": {
                "name": " Sign Up ",
                "visitorId": "v1",
                "url": "https://example.com/welcome",
                "metadata": {"plan": "pro", "seats": 3, "trial": True, "ref": None},
            },
        },
    )
    assert answer.body == {
        "data": {"createGoal": {"created": True, "goalName": "sign_up", "userErrors": []}}
    }
    after = await row_counts(database)
    assert after["goal_completion"] == before["goal_completion"] + 1
    read = await graphql(
        'query { goal(siteId: "ds_test", name: "sign_up") { completionCount '
        "completions { edges { node { visitorId url metadata } } } } }"
    )
    assert read.data["goal"] == {
        "completionCount": 1,
        "completions": {
            "edges": [
                {
                    "node": {
                        "visitorId": "v1",
                        "url": "https://example.com/welcome",
                        "metadata": {"plan": "pro", "seats": 3, "trial": True, "ref": None},
                    }
                }
            ]
        },
    }


async def test_create_goal_takes_completed_at_as_rest_does(graphql: GraphQL) -> None:
    answer = await graphql(
        CREATE_GOAL,
        {
            "siteId": SITE,
            "input": {"name": "signup", "visitorId": "v9", "completedAt": "2026-01-15T10:30:00Z"},
        },
    )
    assert answer.data["createGoal"]["userErrors"] == []
    read = await graphql(
        'query { goal(siteId: "ds_test", name: "signup", start: "2026-01-15", '
        'end: "2026-01-15") { completionCount completions { edges { node { completedAt } } } } }'
    )
    assert read.data["goal"] == {
        "completionCount": 1,
        "completions": {"edges": [{"node": {"completedAt": "2026-01-15T10:30:00Z"}}]},
    }
    refused = await graphql(
        CREATE_GOAL,
        {"siteId": SITE, "input": {"name": "signup", "visitorId": "v9", "completedAt": "soon"}},
    )
    [error] = refused.data["createGoal"]["userErrors"]
    assert (error["field"], error["code"]) == (["input", "completedAt"], "INVALID")


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"name": "!!"}, ["input", "name"], "name: goal names are 1-64 characters"),
        ({"visitorId": ""}, ["input", "visitorId"], "visitorId: must be 1-128 characters"),
        ({"url": "ftp://example.com"}, ["input", "url"], "url: must be an absolute http(s) URL"),
        ({"metadata": [1, 2]}, ["input", "metadata"], "metadata: must be a JSON object"),
        (
            {"metadata": {"plan": "x" * 256}},
            ["input", "metadata", "plan"],
            "metadata.plan: at most 255 characters",
        ),
        (
            {"metadata": {f"k{i}": i for i in range(21)}},
            ["input", "metadata"],
            "metadata: at most 20 keys",
        ),
    ],
)
async def test_invalid_goal_is_a_user_error_and_writes_nothing(
    graphql: GraphQL, database: Database, given: dict[str, Any], field: list[str], message: str
) -> None:
    before = await row_counts(database)
    goal = {"name": "signup", "visitorId": "v1", **given}
    answer = await graphql(CREATE_GOAL, {"siteId": SITE, "input": goal})
    assert answer.status == 200
    payload = answer.data["createGoal"]
    assert (payload["created"], payload["goalName"]) == (False, None)
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (field, "INVALID")
    assert error["message"].startswith(message)
    assert await row_counts(database) == before


# -------------------------------------------------------------------------- payments


async def test_create_payment_returns_the_stored_payment(graphql: GraphQL) -> None:
    result = await create_payment(
        graphql,
        amount="49.90",
        currency="eur",
        paymentType="RECURRING",
        productName="Pro plan",
        paidAt="2026-03-10T12:00:00.750+01:00",
    )
    assert result["created"] is True
    assert result["userErrors"] == []
    # Converted at the ECB reference rate of the payment's UTC day, into the site's USD.
    expected = convert(4990, "EUR", "USD", on=date(2026, 3, 10)).amount_minor
    assert result["payment"] == {
        "transactionId": "t1",
        "visitorId": "v1",
        "amount": "49.90",
        "currency": "EUR",
        "reportingAmount": format_major(expected, "USD"),
        "paymentType": "RECURRING",
        "productName": "Pro plan",
        "paidAt": "2026-03-10T11:00:00Z",
    }
    assert expected != 4990


async def test_amount_keeps_its_digits_from_a_json_number(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    body = (
        '{"query": "mutation($i: CreatePaymentInput!) { createPayment(siteId: \\"ds_test\\", '
        'input: $i) { created payment { amount } userErrors { code } } }", '
        '"variables": {"i": {"visitorId": "v1", "amount": 1234567.10, "currency": "USD", '
        '"transactionId": "t_exact"}}}'
    )
    response = await client.post(
        "/graphql", content=body, headers={**bearer(key), "content-type": "application/json"}
    )
    assert response.json()["data"]["createPayment"] == {
        "created": True,
        "payment": {"amount": "1234567.10"},
        "userErrors": [],
    }


async def test_amount_literal_in_the_query_is_exact(graphql: GraphQL) -> None:
    answer = await graphql(
        'mutation { createPayment(siteId: "ds_test", input: {visitorId: "v1", amount: 0.30, '
        'currency: "USD", transactionId: "t_lit"}) { payment { amount } } }'
    )
    assert answer.data["createPayment"]["payment"] == {"amount": "0.30"}


async def test_identical_replay_is_not_created_again(graphql: GraphQL, database: Database) -> None:
    first = await create_payment(graphql)
    counts = await row_counts(database)
    replay = await create_payment(graphql, amount=49.99)
    assert replay["created"] is False
    assert replay["transactionId"] == "t1"
    assert replay["payment"] == first["payment"]
    assert replay["userErrors"] == []
    assert await row_counts(database) == counts


async def test_conflicting_replay_is_a_conflict_on_the_transaction_id(
    graphql: GraphQL, database: Database
) -> None:
    await create_payment(graphql)
    counts = await row_counts(database)
    result = await create_payment(graphql, amount="50.00")
    assert result["created"] is False
    assert result["payment"] is None
    assert result["userErrors"] == [
        {
            "field": ["input", "transactionId"],
            "message": "Transaction 't1' was already recorded with different fields.",
            "code": "CONFLICT",
        }
    ]
    assert await row_counts(database) == counts


async def test_refund_over_the_original_is_a_conflict_and_writes_nothing(
    graphql: GraphQL, database: Database
) -> None:
    await create_payment(graphql, amount="10.00")
    counts = await row_counts(database)
    result = await create_payment(
        graphql,
        transactionId="r1",
        amount="10.01",
        paymentType="REFUND",
        originalTransactionId="t1",
    )
    [error] = result["userErrors"]
    assert error["code"] == "CONFLICT"
    assert "exceed" in error["message"]
    assert await row_counts(database) == counts


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"amount": "10.001"}, ["input", "amount"], "amount: USD allows at most 2 decimal places"),
        ({"amount": "-1"}, ["input", "amount"], "amount: must be >= 0"),
        ({"amount": 1.5, "currency": "JPY"}, ["input", "amount"], "amount: JPY has no minor"),
        ({"currency": "XYZ"}, ["input", "currency"], "currency: unknown ISO 4217 currency"),
        ({"visitorId": ""}, ["input", "visitorId"], "visitorId: must be 1-128 characters"),
        ({"transactionId": ""}, ["input", "transactionId"], "transactionId: must be 1-255"),
        ({"paidAt": "2999-01-01T00:00:00Z"}, ["input", "paidAt"], "paidAt: must not be more"),
        ({"paidAt": "soon"}, ["input", "paidAt"], "paidAt: 'soon' is not an ISO 8601"),
        (
            {"originalTransactionId": "t0"},
            ["input", "originalTransactionId"],
            "originalTransactionId: only refunds may name",
        ),
        (
            {"paymentType": "REFUND", "originalTransactionId": "missing"},
            ["input", "originalTransactionId"],
            "originalTransactionId: must name a payment",
        ),
    ],
)
async def test_invalid_payment_is_a_user_error_and_writes_nothing(
    graphql: GraphQL, database: Database, given: dict[str, Any], field: list[str], message: str
) -> None:
    before = await row_counts(database)
    result = await create_payment(graphql, **given)
    assert (result["created"], result["transactionId"], result["payment"]) == (False, None, None)
    [error] = result["userErrors"]
    assert (error["field"], error["code"]) == (field, "INVALID")
    assert error["message"].startswith(message), error["message"]
    assert await row_counts(database) == before


async def test_amount_of_the_wrong_type_is_refused_before_execution(
    graphql: GraphQL, database: Database
) -> None:
    before = await row_counts(database)
    answer = await graphql(CREATE_PAYMENT, {"siteId": SITE, "input": payment(amount="ten")})
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert "Decimal" in answer.errors[0]["message"]
    assert await row_counts(database) == before


async def test_mutations_in_one_operation_commit_separately(
    graphql: GraphQL, database: Database
) -> None:
    answer = await graphql(
        """mutation {
          ok: createGoal(siteId: "ds_test", input: {name: "a", visitorId: "v1"}) { created }
          bad: createGoal(siteId: "ds_test", input: {name: "!", visitorId: "v1"}) { created }
        }"""
    )
    assert answer.data == {"ok": {"created": True}, "bad": {"created": False}}
    assert (await row_counts(database))["goal_completion"] == 1


# ----------------------------------------------------------------------------- auth


async def test_read_key_cannot_write(
    graphql: GraphQL, read_key: IssuedKey, database: Database
) -> None:
    before = await row_counts(database)
    for query, variables in [
        (CREATE_GOAL, {"siteId": SITE, "input": {"name": "signup", "visitorId": "v1"}}),
        (CREATE_PAYMENT, {"siteId": SITE, "input": payment()}),
    ]:
        answer = await graphql(query, variables, headers=bearer(read_key))
        assert answer.status == 403
        assert answer.data is None
        assert answer.codes == ["FORBIDDEN"]
        assert answer.errors[0]["message"] == (
            "This action requires an API key with Read & Write permissions."
        )
    assert await row_counts(database) == before
    read = await graphql(GOALS, headers=bearer(read_key))
    assert (read.status, read.errors) == (200, [])


ROOT_FIELDS = [
    'query { goals(siteId: "SITE") { name } }',
    'query { goal(siteId: "SITE", name: "signup") { name } }',
    'query { revenue(siteId: "SITE") { mrr } }',
    'query { revenueTimeseries(siteId: "SITE") { period } }',
    'mutation { createGoal(siteId: "SITE", input: {name: "a", visitorId: "v"}) { created } }',
    'mutation { createPayment(siteId: "SITE", input: {visitorId: "v", amount: 1, currency: "USD",'
    ' transactionId: "t"}) { created } }',
]


@pytest.mark.parametrize("query", ROOT_FIELDS)
async def test_key_of_another_site_is_forbidden(
    graphql: GraphQL, client: httpx.AsyncClient, key: IssuedKey, database: Database, query: str
) -> None:
    before = await row_counts(database)
    answer = await graphql(query.replace("SITE", OTHER_SITE))
    rest = await client.get(f"/api/v1/goals?site_id={OTHER_SITE}", headers=bearer(key))
    assert answer.status == rest.status_code == 403
    assert answer.codes == ["FORBIDDEN"]
    assert answer.errors[0]["message"] == rest.json()["error"]["message"]
    assert answer.errors[0]["message"] == (
        f"This API key does not have access to site '{OTHER_SITE}'."
    )
    assert await row_counts(database) == before


BAD_AUTHORIZATIONS = [
    None,
    "Bearer",
    "Basic abc",
    "Bearer ds_live_short",
    "Bearer ds_live_" + "x" * 32,
]


@pytest.mark.parametrize("query", ROOT_FIELDS)
async def test_without_a_valid_key_every_field_is_unauthenticated(
    client: httpx.AsyncClient, database: Database, query: str
) -> None:
    before = await row_counts(database)
    for authorization in BAD_AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await client.post(
            "/graphql", json={"query": query.replace("SITE", SITE)}, headers=headers
        )
        rest = await client.get(f"/api/v1/goals?site_id={SITE}", headers=headers)
        assert response.status_code == rest.status_code == 401, authorization
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["message"] == rest.json()["error"]["message"]
    assert await row_counts(database) == before


async def test_revoked_key_is_unauthenticated(
    graphql: GraphQL, key: IssuedKey, database: Database
) -> None:
    async with database.write() as session:
        await revoke_key(session, key_id=key.key.id)
    answer = await graphql(GOALS)
    assert answer.status == 401
    assert answer.codes == ["UNAUTHENTICATED"]
    assert answer.errors[0]["message"] == "This API key has been revoked."


async def test_site_is_checked_on_every_root_field(graphql: GraphQL) -> None:
    answer = await graphql(
        'query { mine: goals(siteId: "ds_test") { name } '
        'theirs: revenue(siteId: "ds_other") { mrr } }'
    )
    # Root fields are non-null, so the refused one nulls the whole answer.
    assert answer.status == 403
    assert answer.data is None
    assert answer.codes == ["FORBIDDEN"]
    assert answer.errors[0]["path"] == ["theirs"]


async def test_create_payment_takes_a_billing_interval(graphql: GraphQL) -> None:
    result = await create_payment(
        graphql,
        paymentType="RECURRING",
        amount="1200.00",
        billingInterval="YEAR",
        paidAt="2025-01-01T00:00:00Z",
    )
    assert result["userErrors"] == []
    answer = await graphql(
        'query { revenue(siteId: "ds_test", start: "2025-01-01", end: "2025-06-30") { mrr } }'
    )
    assert answer.data["revenue"]["mrr"] == "100.00"


async def test_billing_interval_on_a_one_time_payment_is_a_user_error(
    database: Database, graphql: GraphQL
) -> None:
    before = await row_counts(database)
    result = await create_payment(graphql, billingIntervalCount=2)
    assert result["created"] is False
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == [
        (["input", "billingIntervalCount"], "INVALID")
    ]
    assert await row_counts(database) == before
