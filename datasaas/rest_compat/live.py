"""``GET /api/v1/realtime`` (CONTRACT §14): visitors with any event in the last 90 seconds."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from datasaas.kit.deps import PrincipalDep
from datasaas.live.hub import LiveHub
from datasaas.rest_compat import models
from datasaas.rest_compat.params import SiteId
from datasaas.rest_compat.responses import DecimalJSONResponse
from datasaas.rest_compat.routes import OptionalEmptyRoute

router = APIRouter(
    prefix="/api/v1", responses=models.ERROR_RESPONSES, route_class=OptionalEmptyRoute
)


class RealtimeItem(BaseModel):
    """The realtime count."""

    visitors: int = Field(ge=0, description="Distinct visitors with an event in the window.")


class RealtimeMeta(BaseModel):
    """Meta of the realtime count."""

    site_id: str
    window_seconds: Literal[90] = 90


class RealtimeResponse(BaseModel):
    """GET /api/v1/realtime."""

    results: RealtimeItem
    meta: RealtimeMeta


@router.get(
    "/realtime",
    response_model=RealtimeResponse,
    summary="Visitors on the site now",
    description=(
        "Distinct visitors with a pageview, heartbeat, goal completion or payment in the last "
        "90 seconds. Computed at most once a second per worker, so polling it every second "
        "from many tabs costs one small indexed count."
    ),
    tags=["realtime"],
)
async def realtime(
    request: Request, principal: PrincipalDep, site_id: SiteId
) -> DecimalJSONResponse:
    """The realtime visitor count of a site."""
    principal.authorize(site_id)
    hub: LiveHub = request.app.state.live.hub
    value = await hub.realtime(site_id)
    return DecimalJSONResponse(
        {
            "results": {"visitors": value.visitors},
            "meta": {"site_id": site_id, "window_seconds": value.window_seconds},
        }
    )
