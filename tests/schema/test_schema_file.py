"""The schema itself: ``schema.graphql`` matches the code, the code matches CONTRACT §9, scalars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    print_ast,
)
from strawberry.printer import print_schema

from datasaas.schema import schema
from datasaas.schema.scalars import parse_datetime, parse_decimal, serialize_datetime
from datasaas.schema.scalars import serialize_decimal as serialize

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"

# CONTRACT §9, verbatim, plus the three custom scalars it names, with §11 and §12's additions.
CONTRACT_SDL = """
scalar DateTime
scalar Decimal
scalar JSON
enum Granularity { HOUR DAY WEEK MONTH }
enum PaymentType { ONE_TIME RECURRING REFUND }
enum BillingInterval { DAY WEEK MONTH YEAR }
type Goal { name: String!  uniqueVisitors: Int!  completionCount: Int!  conversionRate: Float!
            completions(first: Int = 100, after: String): CompletionConnection!
            breakdown(dimension: Dimension!, limit: Int = 100, offset: Int = 0):
              [GoalBreakdownRow!]! }
type RevenueBreakdownRow { value: String  visitors: Int!  payingVisitors: Int!
  newRevenue: Decimal!  refundRevenue: Decimal!  totalRevenue: Decimal!
  conversionRate: Float!  revenuePerVisitor: Decimal! }
type GoalBreakdownRow { value: String  visitors: Int!  uniqueVisitors: Int!
  completionCount: Int!  conversionRate: Float! }
type Completion { visitorId: String!  completedAt: DateTime!  url: String  metadata: JSON
                  source: String  country: String  city: String  browser: String  os: String
                  deviceType: String }
type CompletionConnection { edges: [CompletionEdge!]!  pageInfo: PageInfo!  totalCount: Int! }
type CompletionEdge { cursor: String!  node: Completion! }
type PageInfo { hasNextPage: Boolean!  endCursor: String }
type RevenueSummary { totalRevenue: Decimal!  mrr: Decimal!  conversionRate: Float!
                      currency: String!  newRevenue: Decimal!  refundRevenue: Decimal!
                      payingVisitors: Int!  visitors: Int! }
type RevenuePoint { period: String!  newRevenue: Decimal!  refundRevenue: Decimal! }
type Payment { transactionId: String!  visitorId: String!  amount: Decimal!  currency: String!
               reportingAmount: Decimal!  paymentType: PaymentType!  productName: String
               paidAt: DateTime!
               reportingCurrency: String!  fxRate: String!  originalTransactionId: String
               refundedAmount: Decimal!  billingInterval: BillingInterval
               billingIntervalCount: Int  provider: String!  source: String  country: String
               deviceType: String }
type PaymentConnection { edges: [PaymentEdge!]!  pageInfo: PageInfo!  totalCount: Int! }
type PaymentEdge { cursor: String!  node: Payment! }
enum Dimension { SOURCE COUNTRY CITY BROWSER OS DEVICE_TYPE UTM_SOURCE UTM_MEDIUM UTM_CAMPAIGN }
enum FilterOperator { IS IS_NOT CONTAINS }
input FilterInput { dimension: Dimension!  operator: FilterOperator! = IS  values: [String]! }
type Query {
  goals(siteId: String!, start: String, end: String, timezone: String = "UTC",
        filters: [FilterInput!] = [], limit: Int = 100, offset: Int = 0): [Goal!]!
  goal(siteId: String!, name: String!, start: String, end: String, timezone: String = "UTC",
       filters: [FilterInput!] = []): Goal!
  revenue(siteId: String!, start: String, end: String, timezone: String = "UTC",
          filters: [FilterInput!] = []): RevenueSummary!
  revenueTimeseries(siteId: String!, start: String, end: String, timezone: String = "UTC",
                    filters: [FilterInput!] = [],
                    granularity: Granularity = DAY): [RevenuePoint!]!
  payments(siteId: String!, start: String, end: String, timezone: String = "UTC",
           filters: [FilterInput!] = [], paymentType: PaymentType,
           first: Int = 100, after: String): PaymentConnection!
  realtime(siteId: String!): Realtime!
  revenueBreakdown(siteId: String!, dimension: Dimension!, start: String, end: String,
                   timezone: String = "UTC", filters: [FilterInput!] = [],
                   limit: Int = 100, offset: Int = 0): [RevenueBreakdownRow!]!
}
type Realtime { visitors: Int!  windowSeconds: Int! }
type Subscription {
  completionCreated(siteId: String!, goal: String): Completion!
  paymentCreated(siteId: String!): Payment!
  realtimeVisitors(siteId: String!): Realtime!
}
input CreateGoalInput { name: String!  visitorId: String!  url: String  metadata: JSON
  completedAt: String }
input CreatePaymentInput { visitorId: String!  amount: Decimal!  currency: String!
  transactionId: String!  paymentType: PaymentType = ONE_TIME  productName: String
  paidAt: String  originalTransactionId: String
  billingInterval: BillingInterval  billingIntervalCount: Int }
type UserError { field: [String!]  message: String!  code: String! }
type CreateGoalPayload { created: Boolean!  goalName: String  userErrors: [UserError!]! }
type CreatePaymentPayload { created: Boolean!  transactionId: String  payment: Payment
                            userErrors: [UserError!]! }
type Mutation {
  createGoal(siteId: String!, input: CreateGoalInput!): CreateGoalPayload!
  createPayment(siteId: String!, input: CreatePaymentInput!): CreatePaymentPayload!
  deletePayment(siteId: String!, transactionId: String!): DeletePaymentPayload!
}
type DeletePaymentPayload { deleted: Boolean!  transactionId: String  userErrors: [UserError!]! }
"""


def _shape(named: GraphQLNamedType) -> Any:
    """Everything a client relies on, descriptions left out; default values as GraphQL text."""
    if isinstance(named, GraphQLEnumType):
        return ("enum", list(named.values))
    if isinstance(named, GraphQLScalarType):
        return ("scalar",)
    if isinstance(named, GraphQLInputObjectType):
        return (
            "input",
            [
                (name, str(f.type), _default(f.ast_node, f.default_value, f.type))
                for name, f in named.fields.items()
            ],
        )
    assert isinstance(named, GraphQLObjectType)
    return (
        "type",
        [
            (
                name,
                str(f.type),
                [
                    (arg, str(a.type), _default(a.ast_node, a.default_value, a.type))
                    for arg, a in f.args.items()
                ],
            )
            for name, f in named.fields.items()
        ],
    )


def _default(node: Any, value: Any, type_: Any) -> str | None:
    from graphql import Undefined, ast_from_value

    if node is not None and node.default_value is not None:
        return print_ast(node.default_value)
    if value is Undefined:
        return None
    literal = ast_from_value(value, type_)
    return None if literal is None else print_ast(literal)


def _user_types(graphql_schema: GraphQLSchema) -> dict[str, Any]:
    return {
        name: _shape(named)
        for name, named in graphql_schema.type_map.items()
        if not name.startswith("__") and name not in {"String", "Int", "Float", "Boolean", "ID"}
    }


def test_schema_file_is_up_to_date() -> None:
    """``make schema`` output is committed: regenerate it when the schema changes."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == print_schema(schema) + "\n", (
        "schema.graphql is stale: run `make schema`"
    )


def test_schema_is_exactly_the_contract() -> None:
    contract = _user_types(build_schema(CONTRACT_SDL))
    ours = _user_types(schema._schema)
    assert ours == contract


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("24500.00"), "24500.00"),
        (Decimal("500"), "500"),
        (Decimal("1.234"), "1.234"),
        (Decimal("0.00"), "0.00"),
        (Decimal("-25.00"), "-25.00"),
        (Decimal("1E+3"), "1000"),
        (12, "12"),
    ],
)
def test_decimal_serialises_as_plain_exact_text(value: Decimal | int, text: str) -> None:
    assert serialize(value) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.10", Decimal("10.10")),
        (" 49.99 ", Decimal("49.99")),
        ("1e2", Decimal("1e2")),
        (Decimal("0.30000000000000004"), Decimal("0.30000000000000004")),
        (5, Decimal(5)),
        (10.1, Decimal("10.1")),  # a float by its shortest text, never its binary expansion
        (0.1 + 0.2, Decimal("0.30000000000000004")),
    ],
)
def test_decimal_parses_exactly(value: object, expected: Decimal) -> None:
    parsed = parse_decimal(value)
    assert parsed == expected
    assert str(parsed) == str(expected)


@pytest.mark.parametrize(
    "value", ["abc", "", "1_000", ".5", "1.", "NaN", "Infinity", True, None, float("nan"), [1]]
)
def test_decimal_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="Decimal"):
        parse_decimal(value)


def test_datetime_is_utc_to_the_second() -> None:
    paris = timezone(timedelta(hours=2))
    assert serialize_datetime(datetime(2026, 3, 27, 1, 59, 59, 999_999, tzinfo=paris)) == (
        "2026-03-26T23:59:59Z"
    )
    assert parse_datetime("2026-03-26T23:59:59-04:00") == datetime(
        2026, 3, 27, 3, 59, 59, tzinfo=UTC
    )
    assert parse_datetime("2026-03-26T23:59:59") == datetime(2026, 3, 26, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(TypeError):
        serialize_datetime(datetime(2026, 3, 26))
    with pytest.raises(ValueError, match="DateTime"):
        parse_datetime("yesterday")
