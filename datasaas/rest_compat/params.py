"""The query parameters every ``/api/v1`` read shares, as typed dependencies.

``ReadableRange`` is a site the key may read, a time range and the visitor filters;
``ReadablePage`` adds ``limit``/``offset``; ``WritableSite`` is a site the key may write. Each
authorizes the key once, after its own parameters parsed, so a malformed parameter is answered
400 before a 403, as when every route checked by hand. (polar: ``kit/pagination.py``
``PaginationParamsQuery``, ``discount/auth.py`` ``DiscountRead``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from datasaas import filters
from datasaas.filters import Filter
from datasaas.kit.deps import PrincipalDep
from datasaas.resolvers.idempotency import HEADER as IDEMPOTENCY_HEADER
from datasaas.resolvers.sites import SITE_ID_RE
from datasaas.resolvers.validation import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from datasaas.storage.engine import Database
from datasaas.timerange import Period, zone_names

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
        alias=IDEMPOTENCY_HEADER,
        max_length=255,
        description=(
            "Replays the original response for the same key and body, for at least 24 h "
            "(records are kept 48 h)"
        ),
        json_schema_extra={"pattern": r"\S"},  # not blank
    ),
]


@dataclass(frozen=True, slots=True)
class RangeRead:
    """A read the key may make: its site, the raw range and the visitor filters."""

    site_id: str
    period: Period
    filters: list[Filter]


@dataclass(frozen=True, slots=True)
class PageRead(RangeRead):
    """A paged read: a ``RangeRead`` with ``limit`` and ``offset``."""

    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class _RangeQuery:
    """The raw range parameters (no check yet)."""

    site_id: str
    period: Period


@dataclass(frozen=True, slots=True)
class _PageQuery:
    """The raw page parameters (bounds are the resolvers' to check)."""

    limit: int
    offset: int


# The query dependencies are ``async def``: FastAPI runs a plain callable (a class too) in the
# thread pool, a thread hop per request for what only copies parameters.


async def _range_query(
    site_id: SiteId, start: Start = None, end: End = None, timezone: Timezone = None
) -> _RangeQuery:
    return _RangeQuery(site_id, Period(start, end, timezone))


async def _page_query(limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> _PageQuery:
    return _PageQuery(limit, offset)


def _visitor_filters(request: Request) -> list[Filter]:
    """The ``DIMENSION[OPERATOR]=VALUE`` filters of a read (CONTRACT §11)."""
    return filters.from_query(request.query_params.multi_items())


async def readable_range(
    request: Request, principal: PrincipalDep, query: Annotated[_RangeQuery, Depends(_range_query)]
) -> RangeRead:
    """Authorize the key for the site (403), then parse the filters (400)."""
    principal.authorize(query.site_id)
    return RangeRead(query.site_id, query.period, _visitor_filters(request))


async def readable_page(
    request: Request,
    principal: PrincipalDep,
    query: Annotated[_RangeQuery, Depends(_range_query)],
    page: Annotated[_PageQuery, Depends(_page_query)],
) -> PageRead:
    """``readable_range`` with the page parameters."""
    principal.authorize(query.site_id)
    return PageRead(query.site_id, query.period, _visitor_filters(request), page.limit, page.offset)


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """A site the key may write, the key (for its idempotency records), and the database."""

    site_id: str
    api_key_id: str
    database: Database


async def writable_site(request: Request, principal: PrincipalDep, site_id: SiteId) -> WriteTarget:
    """Authorize the key to write the site (403 for another site's key or a read key), and
    hand the write its database (one dependency fewer to solve on every write)."""
    principal.authorize(site_id, write=True)
    return WriteTarget(site_id, principal.key_id, request.app.state.database)


ReadableRange = Annotated[RangeRead, Depends(readable_range)]
ReadablePage = Annotated[PageRead, Depends(readable_page)]
WritableSite = Annotated[WriteTarget, Depends(writable_site)]
