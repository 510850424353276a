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

from datasaas.deps import DatabaseDep, PrincipalDep
from datasaas.errors import Conflict, InvalidInput
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import revenue as revenue_resolvers
from datasaas.resolvers.goals import GoalIn, Period
from datasaas.resolvers.payments import PaymentIn
from datasaas.resolvers.sites import SITE_ID_RE, Principal, require_site
from datasaas.resolvers.validation import GOAL_NAME_INPUT_PATTERN, MAX_LIMIT, MAX_OFFSET
from datasaas.rest_compat import models
from datasaas.rest_compat.body import read_json_object
from datasaas.rest_compat.responses import DecimalJSONResponse
from datasaas.storage import idempotency
from datasaas.storage.engine import Database
from datasaas.timerange import Granularity, TimeRange, zone_names


class OptionalEmptyRoute(APIRoute):
    """A route where an empty query value (``end=``) counts as absent, as form-built URLs send."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, run on the query string without its empty values."""
        handler = super().get_route_handler()

        async def without_empty_values(request: Request) -> Response:
            query: bytes = request.scope.get("query_string", b"")
            if query:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                kept = [(name, value) for name, value in pairs if value != ""]
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
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays the original response for the same key and body (kept 24 h)",
        json_schema_extra={"pattern": r"\S"},  # not blank
    ),
]


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
    tags=["goals"],
)
async def list_goals(
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
    async with database.read() as session:
        result = await goal_resolvers.list_goals(
            session,
            site_id=site_id,
            period=Period(start, end, timezone),
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
            "model": models.ErrorEnvelope,
            "description": "No such route: the name holds a line break, which a path cannot carry",
        }
    },
    summary="Individual completions of a goal",
    tags=["goals"],
)
async def list_completions(
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
    async with database.read() as session:
        page = await goal_resolvers.list_completions(
            session,
            site_id=site_id,
            name=name,
            period=Period(start, end, timezone),
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
    tags=["revenue"],
)
async def revenue(
    principal: PrincipalDep,
    database: DatabaseDep,
    site_id: SiteId,
    start: Start = None,
    end: End = None,
    timezone: Timezone = None,
) -> Response:
    """Net revenue, MRR at the range end and revenue conversion rate, in major units."""
    principal.authorize(site_id)
    async with database.read() as session:
        site = await require_site(session, site_id)
        summary = await revenue_resolvers.revenue_summary(
            session, site=site, period=Period(start, end, timezone)
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
    tags=["revenue"],
)
async def revenue_timeseries(
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
    async with database.read() as session:
        site = await require_site(session, site_id)
        series = await revenue_resolvers.revenue_timeseries(
            session, site=site, period=Period(start, end, timezone), granularity=granularity
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
