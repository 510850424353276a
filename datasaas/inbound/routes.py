"""``POST /api/webhooks/{provider}/{site_id}``: the providers' signed webhooks (no API key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from datasaas.kit.body import read_raw
from datasaas.kit.deps import DatabaseDep
from datasaas.resolvers.providers import apply_webhook, verify_webhook

MAX_WEBHOOK_BYTES = 1024 * 1024

router = APIRouter(tags=["providers"])


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


@router.post(
    "/api/webhooks/{provider}/{site_id}",
    summary="Receive a payment provider's webhook (Stripe, LemonSqueezy, Polar)",
    responses={
        400: _error(
            "Bad or missing signature, a timestamp over 300 s from now, or an unusable event"
        ),
        404: _error("Unknown site or provider, or the provider is not configured for the site"),
        409: _error("A refund whose payment is not recorded yet (retried later), or a conflict"),
        413: _error("The body is over 1 MiB"),
        503: _error("The database is unavailable; the provider will retry"),
    },
)
async def receive_webhook(
    provider: str, site_id: str, request: Request, database: DatabaseDep
) -> dict[str, bool]:
    """Verify the provider's signature over the raw body with the site's signing secret, then
    record the payment it describes. A redelivered event id is acknowledged without effect."""
    body = await read_raw(request, limit=MAX_WEBHOOK_BYTES)
    async with database.read() as session:
        verified = await verify_webhook(
            session, site_id=site_id, provider=provider, body=body, headers=request.headers
        )
    async with database.write() as session:
        await apply_webhook(session, verified=verified)
    return {"received": True}
