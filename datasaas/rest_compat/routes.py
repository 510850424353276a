"""The ``/api/v1`` routes of the DataSaaS Goals & Revenue API, mapped onto the resolvers."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import simplejson
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from datasaas import filters
from datasaas.errors import Conflict, InvalidInput
from datasaas.filters import Filter
from datasaas.kit.body import read_json_object
from datasaas.kit.deps import DatabaseDep, PrincipalDep
from datasaas.kit.errors import ErrorEnvelope
from datasaas.money import to_major
from datasaas.resolvers import breakdowns as breakdown_resolvers
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import GoalIn, Period
from datasaas.resolvers.payments import PaymentIn
from datasaas.resolvers.sites import SITE_ID_RE, Principal, require_site
from datasaas.resolvers.validation import GOAL_NAME_INPUT_PATTERN, MAX_LIMIT, MAX_OFFSET
from datasaas.rest_compat import models
from datasaas.rest_compat.responses import DecimalJSONResponse
from datasaas.storage import idempotency
from datasaas.storage.engine import Database
from datasaas.storage.payments import LedgerRow
from datasaas.timerange import Granularity, TimeRange, zone_names


class OptionalEmptyRoute(APIRoute):
    """A route where an empty query value (``end=``) counts as absent, as form-built URLs send.

    Filters keep theirs: in ``source[is]=`` the empty value means "no value" (CONTRACT §11).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, run on the query string without its empty values."""
        handler = super().get_route_handler()

        async def without_empty_values(request: Request) -> Response:
            query: bytes = request.scope.get("query_string", b"")
            if query:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                kept = [(name, value) for name, value in pairs if value != "" or "[" in name]
                if len(kept) != len(pairs):
                    request.scope["query_string"] = urlencode(kept).encode("latin-1")
                    request = Request(request.scope, request.receive)
            return await handler(request)

        return without_empty_values


router = APIRouter(
    prefix="/api/v1", responses=models.ERROR_RESPONSES, route_class=OptionalEmptyRoute
)

SiteId = Annotated[
    str,
    Query(
        description="Your website ID",
        examples=["ds_abc123"],
        json_schema_extra={"pattern": SITE_ID_RE.pattern},
    ),
]
# A date or an RFC 3339 date-time (ISO 8601 without an offset is accepted too, as local time).
_INSTANT = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}
Start = Annotated[
    str | None,
    Query(
        description="YYYY-MM-DD or ISO 8601 datetime, not after end. Default: end - 30 days",
        json_schema_extra=_INSTANT,
    ),
]
End = Annotated[
    str | None,
    Query(description="YYYY-MM-DD or ISO 8601 datetime. Default: now", json_schema_extra=_INSTANT),
]
Timezone = Annotated[
    str | None,
    Query(description="IANA timezone. Default: UTC", json_schema_extra={"enum": zone_names()}),
]
# Bounds are checked by the resolvers, so REST and GraphQL refuse them with the same message;
# the schema still documents them.
Limit = Annotated[
    int,
    Query(
        description=f"Results limit, 1-{MAX_LIMIT}",
        json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    ),
]
Offset = Annotated[
    int,
    Query(description="Results to skip", json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
]
DimensionParam = Annotated[
    str | None,
    Query(
        description=(
            "One of source, country, city, browser, os, device_type, utm_source, utm_medium, "
            "utm_campaign"
        )
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays the original response for the same key and body (kept 24 h)",
        json_schema_extra={"pattern": r"\S"},  # not blank
    ),
]


FILTERS_DOC = (
    "Filters on the visitors' first-touch attributes: `DIMENSION[OPERATOR]=VALUE`, with "
    "DIMENSION one of source, country, city, browser, os, device_type, utm_source, utm_medium, "
    "utm_campaign and OPERATOR `is` (any of `A|B`), `is_not` (none of; keeps no value) or "
    "`contains` (case-insensitive). An empty value means no value: `source[is]=` is direct "
    "traffic. Several filters AND together."
)


def _range_meta(site_id: str, rng: TimeRange) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "start": rng.meta_start(),
        "end": rng.meta_end(),
        "timezone": rng.timezone_name,
    }


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _filters(request: Request) -> list[Filter]:
    """The ``DIMENSION[OPERATOR]=VALUE`` filters of a read (CONTRACT §11)."""
    return filters.from_query(request.query_params.multi_items())


def _ledger_item(row: LedgerRow) -> dict[str, Any]:
    return {
        "transaction_id": row.transaction_id,
        "visitor_id": row.visitor_uid,
        "amount": to_major(row.amount_minor, row.currency),
        "currency": row.currency,
        "reporting_amount": to_major(row.reporting_amount_minor, row.reporting_currency),
        "reporting_currency": row.reporting_currency,
        "fx_rate": row.fx_rate,
        "payment_type": row.payment_type,
        "product_name": row.product_name,
        "paid_at": _utc(row.paid_at),
        "original_transaction_id": row.original_transaction_id,
        "refunded_amount": to_major(row.refunded_minor, row.currency),
        "billing_interval": row.billing_interval,
        "billing_interval_count": row.billing_interval_count,
        "provider": row.provider,
        "source": row.source,
        "country": row.country,
        "device_type": row.device_type,
    }


@router.get(
    "/goals",
    response_model=models.GoalsResponse,
    summary="Goals with conversion statistics",
    description=FILTERS_DOC,
    tags=["goals"],
)
async def list_goals(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Every goal of the site with unique visitors, completions and conversion rate in range."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        result = await goal_resolvers.list_goals(
            session,
            site_id=site_id,
            period=Period(start, end, timezone),
            filters=visitor_filters,
            limit=limit,
            offset=offset,
        )
    return DecimalJSONResponse(
        {
            "results": [
                {
                    "goal_name": g.name,
                    "unique_visitors": g.unique_visitors,
                    "completion_count": g.completion_count,
                    "conversion_rate": g.conversion_rate,
                }
                for g in result.goals
            ],
            "meta": {
                **_range_meta(site_id, result.range),
                "limit": limit,
                "offset": offset,
                "visitors": result.visitors,
            },
        }
    )


@router.get(
    # ``path`` so that an encoded slash still reaches the goal-name check (400, not 404).
    "/goals/{name:path}/completions",
    response_model=models.CompletionsResponse,
    responses={
        404: {
            "model": ErrorEnvelope,
            "description": "No such route: the name holds a line break, which a path cannot carry",
        }
    },
    summary="Individual completions of a goal",
    description=FILTERS_DOC,
    tags=["goals"],
)
async def list_completions(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    name: Annotated[
        str,
        Path(
            description="Goal name, e.g. signup",
            json_schema_extra={"pattern": GOAL_NAME_INPUT_PATTERN},
        ),
    ],
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Completions newest first, with the visitor's first-touch source, geo and device."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        page = await goal_resolvers.list_completions(
            session,
            site_id=site_id,
            name=name,
            period=Period(start, end, timezone),
            filters=visitor_filters,
            limit=limit,
            offset=offset,
        )
    return DecimalJSONResponse(
        {
            "results": [
                {
                    "visitor_id": c.visitor_uid,
                    "completed_at": _utc(c.completed_at),
                    "source": c.source,
                    "country": c.country,
                    "city": c.city,
                    "browser": c.browser,
                    "os": c.os,
                    "device_type": c.device_type,
                }
                for c in page.items
            ],
            "meta": {
                **_range_meta(site_id, page.range),
                "goal_name": page.goal_name,
                "limit": page.limit,
                "offset": page.offset,
            },
        }
    )


@router.get(
    "/revenue",
    response_model=models.RevenueResponse,
    summary="Revenue overview",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def revenue(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
) -> Response:
    """Net revenue, MRR at the range end and revenue conversion rate, in major units."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        site = await require_site(session, site_id)
        summary = await revenue_resolvers.revenue_summary(
            session, site=site, period=Period(start, end, timezone), filters=visitor_filters
        )
    return DecimalJSONResponse(
        {
            "results": {
                "total_revenue": summary.total_revenue,
                "mrr": summary.mrr,
                "conversion_rate": summary.conversion_rate,
            },
            "meta": {**_range_meta(site_id, summary.range), "currency": summary.currency},
        }
    )


@router.get(
    "/revenue/timeseries",
    response_model=models.TimeseriesResponse,
    summary="Revenue over time",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def revenue_timeseries(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    granularity: Annotated[
        str | None,
        Query(
            description="Bucket size (case-insensitive). Default: day",
            json_schema_extra={"enum": [g.value for g in Granularity]},
        ),
    ] = None,
) -> Response:
    """New revenue and refunds per local-time bucket, zero-filled."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        site = await require_site(session, site_id)
        series = await revenue_resolvers.revenue_timeseries(
            session,
            site=site,
            period=Period(start, end, timezone),
            granularity=granularity,
            filters=visitor_filters,
        )
    return DecimalJSONResponse(
        {
            "results": [
                {
                    "period": p.period,
                    "new_revenue": p.new_revenue,
                    "refund_revenue": p.refund_revenue,
                }
                for p in series.points
            ],
            "meta": {
                **_range_meta(site_id, series.range),
                "granularity": series.granularity.value,
                "currency": series.currency,
            },
        }
    )


async def _idempotent(
    database: Database,
    principal: Principal,
    idempotency_key: str | None,
    fingerprint: str,
    work: Callable[[Any], Awaitable[dict[str, Any]]],
) -> Response:
    """Run a write in one transaction, replaying or recording it under an Idempotency-Key."""
    async with database.write() as session:
        if idempotency_key is not None:
            if not idempotency_key.strip():
                raise InvalidInput.for_field("Idempotency-Key", "must not be empty")
            stored = await idempotency.claim(
                session,
                api_key_id=principal.key_id,
                key=idempotency_key,
                request_hash=fingerprint,
                now=datetime.now(UTC),
            )
            if stored is not None:
                if stored.request_hash != fingerprint:
                    raise Conflict(
                        "This Idempotency-Key was already used with a different request."
                    )
                return Response(
                    stored.response_body,
                    status_code=stored.status_code,
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
        response = DecimalJSONResponse(await work(session))
        if idempotency_key is not None:
            await idempotency.complete(
                session,
                api_key_id=principal.key_id,
                key=idempotency_key,
                status_code=response.status_code,
                response_body=bytes(response.body).decode(),
            )
    return response


def _fingerprint(path: str, site_id: str, body: dict[str, Any]) -> str:
    canonical = simplejson.dumps([path, site_id, body], use_decimal=True, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


_GOAL_FIELDS = ("name", "visitor_id", "url", "metadata", "completed_at")
_PAYMENT_FIELDS = (
    "visitor_id",
    "amount",
    "currency",
    "transaction_id",
    "payment_type",
    "product_name",
    "paid_at",
    "original_transaction_id",
    "billing_interval",
    "billing_interval_count",
)


@router.post(
    "/goals",
    response_model=models.GoalCreateResponse,
    responses=models.WRITE_ERROR_RESPONSES,
    summary="Record a server-side goal completion",
    tags=["goals"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": models.GoalCreateBody.model_json_schema()}},
        }
    },
)
async def create_goal(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a goal completion for a visitor (requires a Read & Write key)."""
    principal.authorize(site_id, write=True)
    body = await read_json_object(request, allowed=_GOAL_FIELDS)
    goal = GoalIn(**{field: body.get(field) for field in _GOAL_FIELDS})

    async def work(session: Any) -> dict[str, Any]:
        result = await goal_resolvers.record_goal(session, site_id=site_id, goal=goal)
        return {
            "results": {"created": result.created, "goal_name": result.goal_name},
            "meta": {"site_id": site_id},
        }

    return await _idempotent(
        database, principal, idempotency_key, _fingerprint("goals", site_id, body), work
    )


@router.post(
    "/payments",
    response_model=models.PaymentCreateResponse,
    responses=models.WRITE_ERROR_RESPONSES,
    summary="Record a payment and attribute it to a visitor",
    tags=["revenue"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": models.PaymentCreateBody.model_json_schema()}
            },
        }
    },
)
async def create_payment(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a payment (requires a Read & Write key); replays of a transaction are no-ops."""
    principal.authorize(site_id, write=True)
    body = await read_json_object(request, allowed=_PAYMENT_FIELDS)
    payment = PaymentIn(**{field: body.get(field) for field in _PAYMENT_FIELDS})

    async def work(session: Any) -> dict[str, Any]:
        site = await require_site(session, site_id)
        result = await payment_resolvers.record_payment(session, site=site, payment=payment)
        return {
            "results": {
                "created": result.created,
                "transaction_id": result.payment.transaction_id,
            },
            "meta": {"site_id": site_id},
        }

    return await _idempotent(
        database, principal, idempotency_key, _fingerprint("payments", site_id, body), work
    )


@router.get(
    "/payments",
    response_model=models.PaymentsResponse,
    summary="The payments ledger",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def list_payments(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    payment_type: Annotated[
        str | None, Query(description="One of one_time, recurring, refund. Default: all")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Payments newest first, with refunds, billing interval and the payer's first touch."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        page = await payment_resolvers.list_payments(
            session,
            site_id=site_id,
            period=Period(start, end, timezone),
            filters=visitor_filters,
            payment_type=payment_type,
            limit=limit,
            offset=offset,
        )
    return DecimalJSONResponse(
        {
            "results": [_ledger_item(row) for row in page.items],
            "meta": {
                **_range_meta(site_id, page.range),
                "limit": page.limit,
                "offset": page.offset,
            },
        }
    )


@router.delete(
    "/payments/{transaction_id:path}",
    response_model=models.PaymentDeleteResponse,
    responses=models.DELETE_ERROR_RESPONSES,
    summary="Delete a payment and everything derived from it",
    tags=["revenue"],
)
async def delete_payment(
    principal: PrincipalDep,
    database: DatabaseDep,
    transaction_id: Annotated[str, Path(description="The payment's transaction_id")],
    site_id: SiteId,
) -> Response:
    """Delete a payment (requires a Read & Write key); refunds naming it must go first (409)."""
    principal.authorize(site_id, write=True)
    async with database.write() as session:
        deleted = await payment_resolvers.delete_payment(
            session, site_id=site_id, transaction_id=transaction_id
        )
    return DecimalJSONResponse(
        {
            "results": {"deleted": True, "transaction_id": deleted.transaction_id},
            "meta": {"site_id": site_id},
        }
    )


def _breakdown_meta(site_id: str, breakdown: breakdown_resolvers.Breakdown[Any]) -> dict[str, Any]:
    return {
        **_range_meta(site_id, breakdown.range),
        "dimension": breakdown.dimension.value,
        "currency": breakdown.currency,
        "limit": breakdown.limit,
        "offset": breakdown.offset,
    }


@router.get(
    "/revenue/breakdown",
    response_model=models.RevenueBreakdownResponse,
    summary="Revenue by a first-touch dimension",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def revenue_breakdown(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    dimension: DimensionParam = None,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Visitors, payers and revenue per value of the dimension (null = no value), top first."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        site = await require_site(session, site_id)
        breakdown = await breakdown_resolvers.revenue_breakdown(
            session,
            site=site,
            period=Period(start, end, timezone),
            dimension=dimension,
            filters=visitor_filters,
            limit=limit,
            offset=offset,
        )
    return DecimalJSONResponse(
        {
            "results": [
                {
                    "value": row.value,
                    "visitors": row.visitors,
                    "paying_visitors": row.paying_visitors,
                    "new_revenue": row.new_revenue,
                    "refund_revenue": row.refund_revenue,
                    "total_revenue": row.total_revenue,
                    "conversion_rate": row.conversion_rate,
                    "revenue_per_visitor": row.revenue_per_visitor,
                }
                for row in breakdown.rows
            ],
            "meta": _breakdown_meta(site_id, breakdown),
        }
    )


@router.get(
    "/goals/{name:path}/breakdown",
    response_model=models.GoalBreakdownResponse,
    summary="A goal's conversion by a first-touch dimension",
    description=FILTERS_DOC,
    tags=["goals"],
)
async def goal_breakdown(
    request: Request,
    principal: PrincipalDep,
    database: DatabaseDep,
    name: Annotated[str, Path(description="Goal name, e.g. signup")],
    site_id: SiteId,
    dimension: DimensionParam = None,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    """Visitors, completers and completions per value of the dimension, busiest first."""
    principal.authorize(site_id)
    visitor_filters = _filters(request)
    async with database.read() as session:
        site = await require_site(session, site_id)
        goal_name, breakdown = await breakdown_resolvers.goal_breakdown(
            session,
            site=site,
            name=name,
            period=Period(start, end, timezone),
            dimension=dimension,
            filters=visitor_filters,
            limit=limit,
            offset=offset,
        )
    return DecimalJSONResponse(
        {
            "results": [
                {
                    "value": row.value,
                    "visitors": row.visitors,
                    "unique_visitors": row.unique_visitors,
                    "completion_count": row.completion_count,
                    "conversion_rate": row.conversion_rate,
                }
                for row in breakdown.rows
            ],
            "meta": {**_breakdown_meta(site_id, breakdown), "goal_name": goal_name},
        }
    )
