"""The ``/api/v1`` routes of the DataSaaS Goals & Revenue API: thin adapters over the resolvers.

Each route takes its typed parameters (``rest_compat.params``), calls one resolver in one
transaction, and builds its answer from the response model it documents, so ``/openapi.json``
describes what is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.kit.body import read_json_object
from datasaas.kit.deps import DatabaseDep
from datasaas.kit.errors import ErrorEnvelope
from datasaas.resolvers import breakdowns as breakdown_resolvers
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import idempotency
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import GOAL_FIELDS, GoalIn
from datasaas.resolvers.payments import PAYMENT_FIELDS, PaymentIn, ledger_item
from datasaas.resolvers.sites import require_site
from datasaas.resolvers.validation import GOAL_NAME_INPUT_PATTERN
from datasaas.rest_compat import models
from datasaas.rest_compat.params import (
    DimensionParam,
    IdempotencyKey,
    ReadablePage,
    ReadableRange,
    WritableSite,
    WriteTarget,
)
from datasaas.rest_compat.responses import DecimalJSONResponse
from datasaas.timerange import Granularity, TimeRange


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


FILTERS_DOC = (
    "Filters on the visitors' first-touch attributes: `DIMENSION[OPERATOR]=VALUE`, with "
    "DIMENSION one of source, country, city, browser, os, device_type, utm_source, utm_medium, "
    "utm_campaign and OPERATOR `is` (any of `A|B`), `is_not` (none of; keeps no value) or "
    "`contains` (case-insensitive). An empty value means no value: `source[is]=` is direct "
    "traffic. Several filters AND together."
)


def _send(answer: BaseModel) -> DecimalJSONResponse:
    """Render a response model, Decimals as exact JSON numbers."""
    return DecimalJSONResponse(answer.model_dump())


def _range_meta(site_id: str, rng: TimeRange) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "start": rng.meta_start(),
        "end": rng.meta_end(),
        "timezone": rng.timezone_name,
    }


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get(
    "/goals",
    response_model=models.GoalsResponse,
    summary="Goals with conversion statistics",
    description=FILTERS_DOC,
    tags=["goals"],
)
async def list_goals(read: ReadablePage, database: DatabaseDep) -> Response:
    """Every goal of the site with unique visitors, completions and conversion rate in range."""
    async with database.read() as session:
        result = await goal_resolvers.list_goals(
            session,
            site_id=read.site_id,
            period=read.period,
            filters=read.filters,
            limit=read.limit,
            offset=read.offset,
        )
    return _send(
        models.GoalsResponse(
            results=[
                models.GoalItem(
                    goal_name=g.name,
                    unique_visitors=g.unique_visitors,
                    completion_count=g.completion_count,
                    conversion_rate=g.conversion_rate,
                )
                for g in result.goals
            ],
            meta=models.GoalsMeta(
                **_range_meta(read.site_id, result.range),
                limit=read.limit,
                offset=read.offset,
                visitors=result.visitors,
            ),
        )
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
    read: ReadablePage,
    database: DatabaseDep,
    name: Annotated[
        str,
        Path(
            description="Goal name, e.g. signup",
            json_schema_extra={"pattern": GOAL_NAME_INPUT_PATTERN},
        ),
    ],
) -> Response:
    """Completions newest first, with the visitor's first-touch source, geo and device."""
    async with database.read() as session:
        page = await goal_resolvers.list_completions(
            session,
            site_id=read.site_id,
            name=name,
            period=read.period,
            filters=read.filters,
            limit=read.limit,
            offset=read.offset,
        )
    return _send(
        models.CompletionsResponse(
            results=[
                models.CompletionItem(
                    visitor_id=c.visitor_uid,
                    completed_at=_utc(c.completed_at),
                    source=c.source,
                    country=c.country,
                    city=c.city,
                    browser=c.browser,
                    os=c.os,
                    device_type=c.device_type,
                )
                for c in page.items
            ],
            meta=models.CompletionsMeta(
                **_range_meta(read.site_id, page.range),
                goal_name=page.goal_name,
                limit=page.limit,
                offset=page.offset,
            ),
        )
    )


@router.get(
    "/revenue",
    response_model=models.RevenueResponse,
    summary="Revenue overview",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def revenue(read: ReadableRange, database: DatabaseDep) -> Response:
    """Net revenue, MRR at the range end and revenue conversion rate, in major units."""
    async with database.read() as session:
        site = await require_site(session, read.site_id)
        summary = await revenue_resolvers.revenue_summary(
            session, site=site, period=read.period, filters=read.filters
        )
    return _send(
        models.RevenueResponse(
            results=models.RevenueItem(
                total_revenue=summary.total_revenue,
                mrr=summary.mrr,
                conversion_rate=summary.conversion_rate,
            ),
            meta=models.RevenueMeta(
                **_range_meta(read.site_id, summary.range), currency=summary.currency
            ),
        )
    )


@router.get(
    "/revenue/timeseries",
    response_model=models.TimeseriesResponse,
    summary="Revenue over time",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def revenue_timeseries(
    read: ReadableRange,
    database: DatabaseDep,
    granularity: Annotated[
        str | None,
        Query(
            description="Bucket size (case-insensitive). Default: day",
            json_schema_extra={"enum": [g.value for g in Granularity]},
        ),
    ] = None,
) -> Response:
    """New revenue and refunds per local-time bucket, zero-filled."""
    async with database.read() as session:
        site = await require_site(session, read.site_id)
        series = await revenue_resolvers.revenue_timeseries(
            session,
            site=site,
            period=read.period,
            granularity=granularity,
            filters=read.filters,
        )
    return _send(
        models.TimeseriesResponse(
            results=[
                models.RevenuePointItem(
                    period=p.period, new_revenue=p.new_revenue, refund_revenue=p.refund_revenue
                )
                for p in series.points
            ],
            meta=models.TimeseriesMeta(
                **_range_meta(read.site_id, series.range),
                granularity=series.granularity,
                currency=series.currency,
            ),
        )
    )


async def _write_once(
    target: WriteTarget,
    idempotency_key: str | None,
    request_fingerprint: str,
    work: Callable[[AsyncSession], Coroutine[Any, Any, BaseModel]],
) -> Response:
    """Run a write in a group commit under the Idempotency-Key protocol of the resolvers."""

    async def run(session: AsyncSession) -> idempotency.Answer:
        async def answer() -> idempotency.Answer:
            response = _send(await work(session))
            return idempotency.Answer(response.status_code, bytes(response.body))

        return await idempotency.answer_once(
            session,
            api_key_id=target.api_key_id,
            key=idempotency_key,
            request_fingerprint=request_fingerprint,
            work=answer,
        )

    outcome = await target.database.submit(run)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return Response(
        outcome.body,
        status_code=outcome.status_code,
        media_type="application/json",
        headers=headers,
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
    target: WritableSite,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a goal completion for a visitor (requires a Read & Write key)."""
    body = await read_json_object(request, allowed=GOAL_FIELDS)
    goal = GoalIn(**{field: body.get(field) for field in GOAL_FIELDS})

    def respond(result: goal_resolvers.GoalResult) -> BaseModel:
        return models.GoalCreateResponse(
            results=models.GoalCreated(created=result.created, goal_name=result.goal_name),
            meta=models.SiteMeta(site_id=target.site_id),
        )

    if idempotency_key is None:  # the common case: validated here, written with its neighbours
        completion = goal_resolvers.validate_goal(target.site_id, goal)
        return _send(
            respond(await target.database.submit_batched(goal_resolvers.record_goals, completion))
        )

    async def work(session: AsyncSession) -> BaseModel:
        return respond(await goal_resolvers.record_goal(session, site_id=target.site_id, goal=goal))

    fingerprint = idempotency.fingerprint("goals", target.site_id, body)
    return await _write_once(target, idempotency_key, fingerprint, work)


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
    target: WritableSite,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a payment (requires a Read & Write key); replays of a transaction are no-ops."""
    body = await read_json_object(request, allowed=PAYMENT_FIELDS)
    payment = PaymentIn(**{field: body.get(field) for field in PAYMENT_FIELDS})

    def respond(result: payment_resolvers.PaymentResult) -> BaseModel:
        return models.PaymentCreateResponse(
            results=models.PaymentCreated(
                created=result.created, transaction_id=result.payment.transaction_id
            ),
            meta=models.SiteMeta(site_id=target.site_id),
        )

    if idempotency_key is None:  # the common case: validated here, written with its neighbours
        write = payment_resolvers.validate_payment(target.site_id, payment)
        return _send(
            respond(await target.database.submit_batched(payment_resolvers.record_payments, write))
        )

    async def work(session: AsyncSession) -> BaseModel:
        site = await require_site(session, target.site_id)
        return respond(await payment_resolvers.record_payment(session, site=site, payment=payment))

    fingerprint = idempotency.fingerprint("payments", target.site_id, body)
    return await _write_once(target, idempotency_key, fingerprint, work)


@router.get(
    "/payments",
    response_model=models.PaymentsResponse,
    summary="The payments ledger",
    description=FILTERS_DOC,
    tags=["revenue"],
)
async def list_payments(
    read: ReadablePage,
    database: DatabaseDep,
    payment_type: Annotated[
        str | None, Query(description="One of one_time, recurring, refund. Default: all")
    ] = None,
) -> Response:
    """Payments newest first, with refunds, billing interval and the payer's first touch."""
    async with database.read() as session:
        page = await payment_resolvers.list_payments(
            session,
            site_id=read.site_id,
            period=read.period,
            filters=read.filters,
            payment_type=payment_type,
            limit=read.limit,
            offset=read.offset,
        )
    return _send(
        models.PaymentsResponse(
            results=[models.PaymentItem(**ledger_item(row)) for row in page.items],
            meta=models.PaymentsMeta(
                **_range_meta(read.site_id, page.range), limit=page.limit, offset=page.offset
            ),
        )
    )


@router.delete(
    "/payments/{transaction_id:path}",
    response_model=models.PaymentDeleteResponse,
    responses=models.DELETE_ERROR_RESPONSES,
    summary="Delete a payment and everything derived from it",
    tags=["revenue"],
)
async def delete_payment(
    transaction_id: Annotated[str, Path(description="The payment's transaction_id")],
    target: WritableSite,
) -> Response:
    """Delete a payment (requires a Read & Write key); refunds naming it must go first (409)."""
    deleted = await target.database.submit(
        partial(
            payment_resolvers.delete_payment, site_id=target.site_id, transaction_id=transaction_id
        )
    )
    return _send(
        models.PaymentDeleteResponse(
            results=models.PaymentDeleted(deleted=True, transaction_id=deleted.transaction_id),
            meta=models.SiteMeta(site_id=target.site_id),
        )
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
    read: ReadablePage, database: DatabaseDep, dimension: DimensionParam = None
) -> Response:
    """Visitors, payers and revenue per value of the dimension (null = no value), top first."""
    async with database.read() as session:
        site = await require_site(session, read.site_id)
        breakdown = await breakdown_resolvers.revenue_breakdown(
            session,
            site=site,
            period=read.period,
            dimension=dimension,
            filters=read.filters,
            limit=read.limit,
            offset=read.offset,
        )
    return _send(
        models.RevenueBreakdownResponse(
            results=[
                models.RevenueBreakdownItem(
                    value=row.value,
                    visitors=row.visitors,
                    paying_visitors=row.paying_visitors,
                    new_revenue=row.new_revenue,
                    refund_revenue=row.refund_revenue,
                    total_revenue=row.total_revenue,
                    conversion_rate=row.conversion_rate,
                    revenue_per_visitor=row.revenue_per_visitor,
                )
                for row in breakdown.rows
            ],
            meta=models.BreakdownMeta(**_breakdown_meta(read.site_id, breakdown)),
        )
    )


@router.get(
    "/goals/{name:path}/breakdown",
    response_model=models.GoalBreakdownResponse,
    summary="A goal's conversion by a first-touch dimension",
    description=FILTERS_DOC,
    tags=["goals"],
)
async def goal_breakdown(
    read: ReadablePage,
    database: DatabaseDep,
    name: Annotated[str, Path(description="Goal name, e.g. signup")],
    dimension: DimensionParam = None,
) -> Response:
    """Visitors, completers and completions per value of the dimension, busiest first."""
    async with database.read() as session:
        site = await require_site(session, read.site_id)
        goal_name, breakdown = await breakdown_resolvers.goal_breakdown(
            session,
            site=site,
            name=name,
            period=read.period,
            dimension=dimension,
            filters=read.filters,
            limit=read.limit,
            offset=read.offset,
        )
    return _send(
        models.GoalBreakdownResponse(
            results=[
                models.GoalBreakdownItem(
                    value=row.value,
                    visitors=row.visitors,
                    unique_visitors=row.unique_visitors,
                    completion_count=row.completion_count,
                    conversion_rate=row.conversion_rate,
                )
                for row in breakdown.rows
            ],
            meta=models.GoalBreakdownMeta(
                **_breakdown_meta(read.site_id, breakdown), goal_name=goal_name
            ),
        )
    )
