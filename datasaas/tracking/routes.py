"""Tracker-side routes: ``POST /api/events`` (public, CORS-open) and ``GET /js/script.js``.

``POST /api/events`` answers, in this order: 429 when the client IP is past its budget of
events per minute (one event is charged before the body is read, so that every answer carries
the RateLimit headers, and the rest of a batch once it is parsed: a batch of N costs N, and
refused or invalid requests count too); 415, 413 or 400 for a body that is not JSON, is over
64 KiB or is malformed; 400 for invalid events; 404 for an unknown ``website_id``; 400 when an
event's host is not the site's domain or a subdomain of it; then 202 with
``{"received": N, "stored": M}``, where M counts the pageviews and goals written (0 for bots
and for ``_heartbeat``/``_leave``/``_outbound``). Every answer, errors included, carries the
CORS headers, so a page on any origin can post and read the outcome. CORS is handled here
rather than by a global middleware because no other route is meant for browsers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from datasaas.attribution import GeoResolver, parse_user_agent
from datasaas.errors import DomainError
from datasaas.kit.body import read_json
from datasaas.kit.deps import request_client_ip
from datasaas.kit.errors import ErrorEnvelope, error_response
from datasaas.kit.middleware import stamp_rate_limit
from datasaas.ratelimit import RateLimitPolicy
from datasaas.resolvers import events as event_resolvers
from datasaas.resolvers import live
from datasaas.resolvers.ingest import (
    EVENT_TYPES,
    FREE_TEXT_FIELDS,
    MAX_BATCH,
    MAX_HOSTNAME,
    MAX_WEBSITE_ID,
    batch_cost,
    parse_events,
)
from datasaas.resolvers.validation import GOAL_NAME_INPUT_PATTERN, VISITOR_ID_MAX
from datasaas.storage.engine import Database

router = APIRouter(tags=["tracking"])

EVENTS_PATH: Final = "/api/events"
SCRIPT_PATH: Final = "/js/script.js"
SCRIPT_MAX_AGE: Final = 86400  # a new tracker version reaches every browser within a day

CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": (
        "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
    ),
}
_PREFLIGHT_HEADERS: Final = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


class _EventFields(BaseModel):
    """The tracker event fields with their own bounds (the free-text ones are added below)."""

    model_config = ConfigDict(extra="allow")

    website_id: str = Field(
        min_length=1, max_length=MAX_WEBSITE_ID, description="The site id", examples=["ds_abc123"]
    )
    visitor_id: str = Field(
        min_length=1,
        max_length=VISITOR_ID_MAX,
        description="Stable visitor id (the tracker keeps a UUID)",
    )
    session_id: str = Field(
        min_length=1,
        max_length=VISITOR_ID_MAX,
        description="Session id (the tracker rotates it after 30 min idle)",
    )
    event_type: Literal[EVENT_TYPES] = Field(  # type: ignore[valid-type]
        description="pageview, goal (stored); _heartbeat, _leave, _outbound (accepted only)"
    )
    url: str | None = Field(None, description="Absolute http(s) URL of the page")
    hostname: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_HOSTNAME,
        description="Page host; required unless url has one",
    )
    screen_width: int | None = None
    language: str | None = None
    goal_name: str | None = Field(
        None, pattern=GOAL_NAME_INPUT_PATTERN, description="Required for goal events"
    )
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None, description="Goal metadata: flat object, at most 20 keys"
    )


EventPayload = create_model(
    "EventPayload",
    __base__=_EventFields,
    __doc__="One tracker event (documentation of the body; unknown fields are ignored).",
    **dict.fromkeys(FREE_TEXT_FIELDS, (str | None, None)),  # type: ignore[call-overload]
)
"""The documented body: the bounded fields, plus the resolver's free-text fields, truncated."""


class EventsAccepted(BaseModel):
    """The answer to an accepted request."""

    received: int = Field(description="Events in the request")
    stored: int = Field(description="Pageviews and goals written (0 for bots)")


_EVENT_SCHEMA = EventPayload.model_json_schema()
_BODY_SCHEMA: Final = {
    "oneOf": [
        _EVENT_SCHEMA,
        {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH},
    ]
}


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


@router.options(EVENTS_PATH, include_in_schema=False)
async def events_preflight(request: Request) -> Response:
    """Answer the CORS preflight of browsers posting JSON from any origin."""
    headers = dict(_PREFLIGHT_HEADERS)
    # Chrome's Private Network Access: a public page may post to a tracker on a private network.
    if request.headers.get("access-control-request-private-network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return Response(status_code=204, headers=headers)


@router.post(
    EVENTS_PATH,
    status_code=202,
    summary="Record tracker events (public, no API key)",
    response_model=EventsAccepted,
    responses={
        400: _error("Invalid event, or a host that is not the site's domain"),
        404: _error("Unknown website_id"),
        413: _error("Body over 64 KiB"),
        415: _error("Body is not JSON"),
        429: _error("More than 100 events (by default) per minute from this client IP"),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
)
async def post_events(request: Request) -> Response:
    """Accept one event or a JSON array of up to 100; pageviews and goals are stored.

    Bots (by User-Agent) are answered 202 and nothing is stored. Unknown fields are ignored.
    """
    # The app's parts are read here rather than as four dependencies: FastAPI solves each
    # dependency per request, tens of microseconds apiece on the busiest route.
    state = request.app.state
    try:
        return await _ingest(
            request, state.database, state.geo, state.rate_limit_policy, request_client_ip(request)
        )
    except DomainError as exc:
        return error_response(exc, headers=CORS_HEADERS)


@dataclass(frozen=True, slots=True)
class _Script:
    body: bytes
    etag: str


@cache
def _script() -> _Script:
    body = resources.files("datasaas").joinpath("static", "script.js").read_bytes()
    return _Script(body=body, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@router.head(SCRIPT_PATH, include_in_schema=False)
@router.get(
    SCRIPT_PATH,
    summary="The tracker script",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
async def tracker_script(request: Request) -> Response:
    """Serve the tracker: ``<script defer src=".../js/script.js" data-website-id="ds_...">``."""
    script = _script()
    headers = {
        "Cache-Control": f"public, max-age={SCRIPT_MAX_AGE}",
        "ETag": script.etag,
        # Pages that isolate themselves (COEP) may still embed the script.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if script.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(script.body, media_type="application/javascript", headers=headers)


async def _ingest(
    request: Request,
    database: Database,
    geo: GeoResolver,
    policy: RateLimitPolicy,
    ip: str | None,
) -> Response:
    async def spend(cost: int) -> None:
        state = await policy.spend_events(ip=ip or "unknown", cost=cost)
        stamp_rate_limit(request, state)  # the middleware sends it as the RateLimit-* headers
        if not state.allowed:
            raise policy.events_refused(state)

    # Charge one event before reading the body, so that every answer (413 and 415 included)
    # counts and carries the RateLimit headers; the rest of a batch is charged once parsed.
    await spend(1)
    body = await read_json(request, what="events")
    if (extra := batch_cost(body) - 1) > 0:
        await spend(extra)
    events = parse_events(body)
    sites = await event_resolvers.sites_for(database.sites.find, events=events)
    device = parse_user_agent(request.headers.get("user-agent"))
    stored = 0
    if not device.is_bot and any(live.shows_presence(event.event_type) for event in events):
        country, city = geo.lookup(ip)
        client = event_resolvers.ClientInfo(device=device, country=country, city=city)
        batch = event_resolvers.EventBatch(sites, events, client, datetime.now(UTC))
        stored = await database.submit_batched(event_resolvers.record_event_batches, batch)
    return JSONResponse(
        EventsAccepted(received=len(events), stored=stored).model_dump(),
        status_code=202,
        headers=CORS_HEADERS,
    )
