"""Pydantic shapes of the REST bodies and envelopes, for validation-free rendering and OpenAPI."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from datasaas.kit.errors import ErrorEnvelope
from datasaas.money import MAX_AMOUNT, currency_pattern
from datasaas.resolvers.validation import (
    GOAL_NAME_INPUT_PATTERN,
    HTTP_URL_PATTERN,
    URL_MAX,
    VISITOR_ID_MAX,
)
from datasaas.timerange import Granularity

# Money leaves as a JSON number with its exact digits (24500.00), never as a string.
Money = Annotated[Decimal, WithJsonSchema({"type": "number"})]
# Amounts come in as a JSON number or a decimal string, in major units.
AmountIn = Annotated[
    Decimal,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_AMOUNT)},
                {"type": "string", "pattern": r"^\s*\+?[0-9]+(\.[0-9]+)?\s*$"},
            ],
            "description": "Major units, at most the currency's decimals (USD 2, JPY 0)",
            "examples": [99.00],
        }
    ),
]


class RangeMeta(BaseModel):
    """Meta of range reads."""

    site_id: str
    start: str = Field(examples=["2026-03-01T00:00:00Z"])
    end: str = Field(examples=["2026-03-26T23:59:59Z"])
    timezone: str = "UTC"


class GoalItem(BaseModel):
    """A goal's numbers."""

    goal_name: str
    unique_visitors: int
    completion_count: int
    conversion_rate: float


class GoalsMeta(RangeMeta):
    """Meta of the goals list."""

    limit: int
    offset: int
    visitors: int


class GoalsResponse(BaseModel):
    """GET /api/v1/goals."""

    results: list[GoalItem]
    meta: GoalsMeta


class CompletionItem(BaseModel):
    """One completion with the visitor's first-touch attributes."""

    visitor_id: str
    completed_at: str = Field(examples=["2026-03-25T14:05:00Z"])
    source: str | None
    country: str | None
    city: str | None
    browser: str | None
    os: str | None
    device_type: Literal["desktop", "mobile", "tablet"] | None


class CompletionsMeta(RangeMeta):
    """Meta of the completions list."""

    goal_name: str
    limit: int
    offset: int


class CompletionsResponse(BaseModel):
    """GET /api/v1/goals/{name}/completions."""

    results: list[CompletionItem]
    meta: CompletionsMeta


class RevenueItem(BaseModel):
    """Revenue numbers in major units of the site's currency."""

    total_revenue: Money = Field(examples=[24500.00])
    mrr: Money = Field(examples=[8200.00])
    conversion_rate: float


class RevenueMeta(RangeMeta):
    """Meta of the revenue summary."""

    currency: str


class RevenueResponse(BaseModel):
    """GET /api/v1/revenue."""

    results: RevenueItem
    meta: RevenueMeta


class RevenuePointItem(BaseModel):
    """One bucket."""

    period: str
    new_revenue: Money
    refund_revenue: Money


class TimeseriesMeta(RangeMeta):
    """Meta of the revenue series."""

    granularity: Granularity
    currency: str


class TimeseriesResponse(BaseModel):
    """GET /api/v1/revenue/timeseries."""

    results: list[RevenuePointItem]
    meta: TimeseriesMeta


class SiteMeta(BaseModel):
    """Meta of writes."""

    site_id: str


class GoalCreated(BaseModel):
    """Result of POST /api/v1/goals."""

    created: bool
    goal_name: str


class GoalCreateResponse(BaseModel):
    """POST /api/v1/goals."""

    results: GoalCreated
    meta: SiteMeta


class PaymentCreated(BaseModel):
    """Result of POST /api/v1/payments."""

    created: bool
    transaction_id: str


class PaymentCreateResponse(BaseModel):
    """POST /api/v1/payments."""

    results: PaymentCreated
    meta: SiteMeta


class GoalCreateBody(BaseModel):
    """Body of POST /api/v1/goals (documentation; parsing is exact and strict)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=GOAL_NAME_INPUT_PATTERN,
        description="Trimmed, lowercased, spaces to '_'; then 1-64 of a-z 0-9 _ : -",
        examples=["signup"],
    )
    visitor_id: str = Field(min_length=1, max_length=VISITOR_ID_MAX, examples=["v_8f3a2b1c"])
    url: str | None = Field(default=None, max_length=URL_MAX, pattern=HTTP_URL_PATTERN)
    metadata: dict[str, str | float | bool | None] | None = Field(
        default=None, examples=[{"plan": "pro"}]
    )
    completed_at: str | None = Field(default=None, description="ISO 8601; default now")


class PaymentCreateBody(BaseModel):
    """Body of POST /api/v1/payments (documentation; parsing is exact and strict)."""

    # original_transaction_id belongs to refunds only.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {
                "not": {
                    "required": ["payment_type"],
                    "properties": {"payment_type": {"const": "refund"}},
                }
            },
            "then": {"properties": {"original_transaction_id": {"type": "null"}}},
        },
    )

    visitor_id: str = Field(min_length=1, max_length=VISITOR_ID_MAX)
    amount: AmountIn
    currency: str = Field(
        json_schema_extra={"pattern": currency_pattern()},
        description="ISO 4217 code, any case",
        examples=["USD"],
    )
    transaction_id: str = Field(min_length=1, max_length=255)
    payment_type: Literal["one_time", "recurring", "refund"] = "one_time"
    product_name: str | None = Field(default=None, max_length=255)
    paid_at: str | None = Field(default=None, description="ISO 8601; default now")
    original_transaction_id: str | None = Field(
        default=None, description="On refunds: the refunded payment's transaction_id"
    )
    billing_interval: Literal["day", "week", "month", "year"] | None = Field(
        default=None, description="On recurring payments only; default month"
    )
    billing_interval_count: int | None = Field(
        default=None, ge=1, le=365, description="On recurring payments only; default 1"
    )


class PaymentItem(BaseModel):
    """One payment of the ledger (CONTRACT §12); money in major units of its currency."""

    transaction_id: str
    visitor_id: str
    amount: Money = Field(examples=[99.00])
    currency: str
    reporting_amount: Money
    reporting_currency: str
    fx_rate: str = Field(examples=["1"], description="Exact ECB reference rate used")
    payment_type: Literal["one_time", "recurring", "refund"]
    product_name: str | None
    paid_at: str = Field(examples=["2026-03-25T14:05:00Z"])
    original_transaction_id: str | None
    refunded_amount: Money = Field(description="Refunds naming it, in its own currency")
    billing_interval: Literal["day", "week", "month", "year"] | None
    billing_interval_count: int | None
    provider: Literal["api", "stripe", "lemonsqueezy", "polar"]
    source: str | None
    country: str | None
    device_type: Literal["desktop", "mobile", "tablet"] | None


class PaymentsMeta(RangeMeta):
    """Meta of the payments ledger."""

    limit: int
    offset: int


class PaymentsResponse(BaseModel):
    """GET /api/v1/payments."""

    results: list[PaymentItem]
    meta: PaymentsMeta


class PaymentDeleted(BaseModel):
    """Result of DELETE /api/v1/payments/{transaction_id}."""

    deleted: bool
    transaction_id: str


class PaymentDeleteResponse(BaseModel):
    """DELETE /api/v1/payments/{transaction_id}."""

    results: PaymentDeleted
    meta: SiteMeta


DimensionName = Literal[
    "source",
    "country",
    "city",
    "browser",
    "os",
    "device_type",
    "utm_source",
    "utm_medium",
    "utm_campaign",
]


class RevenueBreakdownItem(BaseModel):
    """Revenue of the visitors with one value of the dimension (``null`` = no value)."""

    value: str | None
    visitors: int
    paying_visitors: int
    new_revenue: Money
    refund_revenue: Money
    total_revenue: Money
    conversion_rate: float
    revenue_per_visitor: Money


class BreakdownMeta(RangeMeta):
    """Meta of the breakdowns."""

    dimension: DimensionName
    currency: str
    limit: int
    offset: int


class RevenueBreakdownResponse(BaseModel):
    """GET /api/v1/revenue/breakdown."""

    results: list[RevenueBreakdownItem]
    meta: BreakdownMeta


class GoalBreakdownItem(BaseModel):
    """One goal's numbers among the visitors with one value of the dimension."""

    value: str | None
    visitors: int
    unique_visitors: int
    completion_count: int
    conversion_rate: float


class GoalBreakdownMeta(BreakdownMeta):
    """Meta of a goal's breakdown."""

    goal_name: str


class GoalBreakdownResponse(BaseModel):
    """GET /api/v1/goals/{name}/breakdown."""

    results: list[GoalBreakdownItem]
    meta: GoalBreakdownMeta


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "Invalid request"},
    401: {"model": ErrorEnvelope, "description": "Missing, malformed, unknown or revoked API key"},
    403: {"model": ErrorEnvelope, "description": "Key of another site, or read key on a write"},
    429: {"model": ErrorEnvelope, "description": "Rate limited"},
    503: {"model": ErrorEnvelope, "description": "Database unreachable; retry later"},
}
WRITE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorEnvelope, "description": "Conflicting replay or refund over the original"},
    413: {"model": ErrorEnvelope, "description": "Body over 64 KiB"},
    415: {"model": ErrorEnvelope, "description": "Body is not JSON"},
}
DELETE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorEnvelope, "description": "No such payment on this site"},
    409: {"model": ErrorEnvelope, "description": "Refunds still name the payment"},
}
