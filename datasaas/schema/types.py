"""GraphQL object, enum and input types (CONTRACT §9), built from the resolvers' results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import strawberry
from strawberry import UNSET

from datasaas.billing import BillingInterval, PaymentType
from datasaas.filters import Dimension, Filter, FilterOperator, build_filter, check_count
from datasaas.money import to_major
from datasaas.resolvers import breakdowns
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import CompletionKeysetPage, GoalRow, encode_cursor
from datasaas.resolvers.payments import PaymentConnection as PaymentPage
from datasaas.resolvers.payments import payment_cursor
from datasaas.schema.context import BreakdownKey, CompletionsKey, Context
from datasaas.schema.scalars import JSON
from datasaas.storage.goals import CompletionRow
from datasaas.storage.payments import LedgerRow
from datasaas.timerange import Granularity, TimeRange

T = TypeVar("T")


def given(value: T | None) -> T | None:
    """Return an optional argument's value, None when the client left it out (``UNSET``)."""
    return None if value is UNSET else value


# The resolvers' own enums are the GraphQL enums, under their member names (HOUR, ONE_TIME...).
strawberry.enum(Granularity, description="Bucket size of a time series (local time of `timezone`).")
strawberry.enum(PaymentType, description="The kind of a payment.")
strawberry.enum(BillingInterval, description="The unit of a recurring payment's billing period.")
strawberry.enum(Dimension, description="A visitor's first-touch attribute.")
strawberry.enum(FilterOperator, description="How a filter compares an attribute with its values.")


@strawberry.type(description="Relay-style page information.")
class PageInfo:
    """Whether more items follow, and the cursor to continue after."""

    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One completion of a goal, with the visitor's first-touch data.")
class Completion:
    """A goal completion."""

    visitor_id: str
    completed_at: datetime
    url: str | None
    metadata: JSON | None
    source: str | None
    country: str | None
    city: str | None
    browser: str | None
    os: str | None
    device_type: str | None

    @classmethod
    def from_row(cls, row: CompletionRow) -> Completion:
        """Build from a stored completion row."""
        return cls(
            visitor_id=row.visitor_uid,
            completed_at=row.completed_at,
            url=row.url,
            metadata=JSON(row.metadata) if row.metadata is not None else None,
            source=row.source,
            country=row.country,
            city=row.city,
            browser=row.browser,
            os=row.os,
            device_type=row.device_type,
        )


@strawberry.type(description="A completion and its opaque cursor.")
class CompletionEdge:
    """An edge of a completion connection."""

    cursor: str
    node: Completion


@strawberry.type(description="A keyset page of completions, newest first.")
class CompletionConnection:
    """Completions of one goal in the range: a page and the total."""

    edges: list[CompletionEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Completions in the range, all pages.")

    @classmethod
    def from_page(cls, page: CompletionKeysetPage) -> CompletionConnection:
        """Build from the resolver's keyset page."""
        return cls(
            edges=[
                CompletionEdge(cursor=encode_cursor(row), node=Completion.from_row(row))
                for row in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


async def resolve_completions(
    root: Goal,
    info: strawberry.Info[Context],
    first: int | None = 100,
    after: str | None = UNSET,
) -> CompletionConnection:
    """A keyset page, loaded in one batch with every other goal of the request."""
    key = CompletionsKey(
        root.goal_id,
        root.rng,
        100 if first is None else first,
        given(after),
        root.site_id,
        root.filters,
    )
    return CompletionConnection.from_page(await info.context.completions_loader.load(key))


@strawberry.type(description="One goal's numbers among the visitors with one dimension value.")
class GoalBreakdownRow:
    """A row of ``Goal.breakdown``; ``value`` null = visitors without a value."""

    value: str | None
    visitors: int
    unique_visitors: int
    completion_count: int
    conversion_rate: float

    @classmethod
    def from_row(cls, row: breakdowns.GoalBreakdownRow) -> GoalBreakdownRow:
        """Build from the resolver's row."""
        return cls(
            value=row.value,
            visitors=row.visitors,
            unique_visitors=row.unique_visitors,
            completion_count=row.completion_count,
            conversion_rate=row.conversion_rate,
        )


@strawberry.type(description="Revenue of the visitors with one dimension value.")
class RevenueBreakdownRow:
    """A row of ``revenueBreakdown``; ``value`` null = visitors without a value."""

    value: str | None
    visitors: int
    paying_visitors: int
    new_revenue: Decimal
    refund_revenue: Decimal
    total_revenue: Decimal
    conversion_rate: float
    revenue_per_visitor: Decimal

    @classmethod
    def from_row(cls, row: breakdowns.RevenueBreakdownRow) -> RevenueBreakdownRow:
        """Build from the resolver's row."""
        return cls(
            value=row.value,
            visitors=row.visitors,
            paying_visitors=row.paying_visitors,
            new_revenue=row.new_revenue,
            refund_revenue=row.refund_revenue,
            total_revenue=row.total_revenue,
            conversion_rate=row.conversion_rate,
            revenue_per_visitor=row.revenue_per_visitor,
        )


async def resolve_breakdown(
    root: Goal,
    info: strawberry.Info[Context],
    dimension: Dimension,
    limit: int | None = 100,
    offset: int | None = 0,
) -> list[GoalBreakdownRow]:
    """The goal's breakdown, loaded in one batch with every other goal of the request."""
    key = BreakdownKey(root.goal_id, root.rng, root.site_id, root.filters, dimension, limit, offset)
    return [GoalBreakdownRow.from_row(row) for row in await info.context.breakdown_loader.load(key)]


@strawberry.type(description="A goal's conversion statistics in the requested range.")
class Goal:
    """One goal of a site."""

    name: str
    unique_visitors: int
    completion_count: int
    conversion_rate: float
    goal_id: strawberry.Private[int | None]
    rng: strawberry.Private[TimeRange]
    site_id: strawberry.Private[str]
    filters: strawberry.Private[tuple[Filter, ...]]

    @classmethod
    def from_row(
        cls, row: GoalRow, rng: TimeRange, site_id: str, filters: Sequence[Filter] = ()
    ) -> Goal:
        """Build from a resolver row and the range and filters it was computed for."""
        return cls(
            name=row.name,
            unique_visitors=row.unique_visitors,
            completion_count=row.completion_count,
            conversion_rate=row.conversion_rate,
            goal_id=row.goal_id,
            rng=rng,
            site_id=site_id,
            filters=tuple(filters),
        )

    completions: CompletionConnection = strawberry.field(
        resolver=resolve_completions,
        description=(
            "Completions in the goal's range, newest first; `first` is 1-1000, `after` an "
            "`endCursor` from a previous page."
        ),
    )
    breakdown: list[GoalBreakdownRow] = strawberry.field(
        resolver=resolve_breakdown,
        description=(
            "The goal's numbers per value of a first-touch dimension (the goal's range and "
            "filters), busiest first."
        ),
    )


@strawberry.type(description="Revenue in the range, amounts in the site's reporting currency.")
class RevenueSummary:
    """Net revenue, MRR at the range end and the revenue conversion rate."""

    total_revenue: Decimal
    mrr: Decimal
    conversion_rate: float
    currency: str
    new_revenue: Decimal
    refund_revenue: Decimal
    paying_visitors: int
    visitors: int

    @classmethod
    def from_summary(cls, summary: revenue_resolvers.RevenueSummary) -> RevenueSummary:
        """Build from the resolver's summary."""
        return cls(
            total_revenue=summary.total_revenue,
            mrr=summary.mrr,
            conversion_rate=summary.conversion_rate,
            currency=summary.currency,
            new_revenue=summary.new_revenue,
            refund_revenue=summary.refund_revenue,
            paying_visitors=summary.paying_visitors,
            visitors=summary.visitors,
        )


@strawberry.type(description="One bucket of the revenue series.")
class RevenuePoint:
    """New revenue and refunds in one local-time bucket."""

    period: str
    new_revenue: Decimal
    refund_revenue: Decimal


@strawberry.type(description="A stored payment.")
class Payment:
    """A payment as recorded: original amount and the amount in the reporting currency."""

    transaction_id: str
    visitor_id: str
    amount: Decimal
    currency: str
    reporting_amount: Decimal
    payment_type: PaymentType
    product_name: str | None
    paid_at: datetime
    reporting_currency: str
    fx_rate: str
    original_transaction_id: str | None
    refunded_amount: Decimal = strawberry.field(
        description="Refunds naming this payment, in its own currency."
    )
    billing_interval: BillingInterval | None
    billing_interval_count: int | None
    provider: str
    source: str | None
    country: str | None
    device_type: str | None

    @classmethod
    def from_row(cls, row: LedgerRow) -> Payment:
        """Build from a ledger row."""
        return cls(
            transaction_id=row.transaction_id,
            visitor_id=row.visitor_uid,
            amount=to_major(row.amount_minor, row.currency),
            currency=row.currency,
            reporting_amount=to_major(row.reporting_amount_minor, row.reporting_currency),
            payment_type=PaymentType(row.payment_type),
            product_name=row.product_name,
            paid_at=row.paid_at,
            reporting_currency=row.reporting_currency,
            fx_rate=row.fx_rate,
            original_transaction_id=row.original_transaction_id,
            refunded_amount=to_major(row.refunded_minor, row.currency),
            billing_interval=(
                BillingInterval(row.billing_interval) if row.billing_interval else None
            ),
            billing_interval_count=row.billing_interval_count,
            provider=row.provider,
            source=row.source,
            country=row.country,
            device_type=row.device_type,
        )


@strawberry.type(description="A payment and its opaque cursor.")
class PaymentEdge:
    """An edge of a payment connection."""

    cursor: str
    node: Payment


@strawberry.type(description="A keyset page of payments, newest first.")
class PaymentConnection:
    """Payments in the range: a page and the total."""

    edges: list[PaymentEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Payments in the range, all pages.")

    @classmethod
    def from_page(cls, page: PaymentPage) -> PaymentConnection:
        """Build from the resolver's keyset page."""
        return cls(
            edges=[
                PaymentEdge(cursor=payment_cursor(row), node=Payment.from_row(row))
                for row in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


@strawberry.input(description="Narrow a read to visitors whose first-touch attribute matches.")
class FilterInput:
    """One filter; a `null` in `values` means no value (e.g. direct traffic for SOURCE)."""

    dimension: Dimension
    operator: FilterOperator = FilterOperator.IS
    values: list[str | None]


NO_FILTERS: list[FilterInput] = []
"""The default of every ``filters`` argument (printed as ``= []``); never mutated."""


def to_filters(inputs: list[FilterInput] | None) -> list[Filter]:
    """Parse FilterInputs with the same rules as REST's bracket syntax."""
    return check_count(
        [
            build_filter(item.dimension, item.operator, item.values, field=f"filters.{index}")
            for index, item in enumerate(inputs or [])
        ]
    )


@strawberry.input(description="A server-side goal completion.")
class CreateGoalInput:
    """The fields of ``POST /api/v1/goals``."""

    name: str
    visitor_id: str
    url: str | None = UNSET
    metadata: JSON | None = UNSET
    completed_at: str | None = strawberry.field(
        default=UNSET, description="ISO 8601; default now (as REST's completed_at)."
    )


@strawberry.input(description="A payment, refund or renewal.")
class CreatePaymentInput:
    """The fields of ``POST /api/v1/payments``."""

    visitor_id: str
    amount: Decimal
    currency: str
    transaction_id: str
    payment_type: PaymentType | None = PaymentType.ONE_TIME
    product_name: str | None = UNSET
    paid_at: str | None = UNSET
    original_transaction_id: str | None = UNSET
    billing_interval: BillingInterval | None = UNSET
    billing_interval_count: int | None = UNSET


@strawberry.type(description="Why a mutation input was refused.")
class UserError:
    """A refused input: the input field path, a message and INVALID or CONFLICT."""

    field: list[str] | None
    message: str
    code: str


@strawberry.type(description="The result of createGoal.")
class CreateGoalPayload:
    """Whether the completion was recorded, or why not."""

    created: bool
    goal_name: str | None
    user_errors: list[UserError]


@strawberry.type(description="The result of createPayment.")
class CreatePaymentPayload:
    """The stored payment (``created: false`` for an identical replay), or why not."""

    created: bool
    transaction_id: str | None
    payment: Payment | None
    user_errors: list[UserError]


@strawberry.type(description="The result of deletePayment.")
class DeletePaymentPayload:
    """Whether the payment was deleted, or why not."""

    deleted: bool
    transaction_id: str | None
    user_errors: list[UserError]
