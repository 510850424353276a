"""Queries on payment providers: site configurations, handled webhook events, customer links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import Payment, ProviderConfig, ProviderCustomer, ProviderEvent
from datasaas.storage.sql import dialect_insert, insert_ignore


async def get_config(
    session: AsyncSession, *, site_id: str, provider: str
) -> ProviderConfig | None:
    """Return a site's configuration of a provider, or None."""
    return await session.get(ProviderConfig, (site_id, provider))


async def upsert_config(
    session: AsyncSession, *, site_id: str, provider: str, secret: str, now: datetime
) -> None:
    """Create or replace a site's signing secret for a provider."""
    statement = dialect_insert(session)(ProviderConfig).values(
        site_id=site_id, provider=provider, secret=secret, created_at=now, updated_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["site_id", "provider"], set_={"secret": secret, "updated_at": now}
        )
    )


async def list_configs(session: AsyncSession, *, site_id: str) -> Sequence[ProviderConfig]:
    """Return a site's provider configurations, by provider name."""
    result = await session.execute(
        select(ProviderConfig)
        .where(col(ProviderConfig.site_id) == site_id)
        .order_by(col(ProviderConfig.provider))
    )
    return result.scalars().all()


async def delete_config(session: AsyncSession, *, site_id: str, provider: str) -> bool:
    """Remove a site's configuration of a provider; False when there was none."""
    result = await session.execute(
        delete(ProviderConfig).where(
            col(ProviderConfig.site_id) == site_id, col(ProviderConfig.provider) == provider
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def claim_event(
    session: AsyncSession,
    *,
    site_id: str,
    provider: str,
    event_id: str,
    event_type: str,
    outcome: str,
    now: datetime,
) -> bool:
    """Record an event id as handled; False when it was handled before (a redelivery)."""
    result = await session.execute(
        insert_ignore(
            session,
            ProviderEvent,
            {
                "site_id": site_id,
                "provider": provider,
                "event_id": event_id,
                "event_type": event_type,
                "outcome": outcome,
                "received_at": now,
            },
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def customer_visitor(
    session: AsyncSession, *, site_id: str, provider: str, customer_id: str
) -> str | None:
    """The visitor id a provider's customer was linked to, or None."""
    link = await session.get(ProviderCustomer, (site_id, provider, customer_id))
    return link.visitor_uid if link is not None else None


async def link_customer(
    session: AsyncSession,
    *,
    site_id: str,
    provider: str,
    customer_id: str,
    visitor_uid: str,
    now: datetime,
) -> None:
    """Link a customer to a visitor unless already linked (the first link is kept)."""
    await session.execute(
        insert_ignore(
            session,
            ProviderCustomer,
            {
                "site_id": site_id,
                "provider": provider,
                "customer_id": customer_id,
                "visitor_uid": visitor_uid,
                "linked_at": now,
            },
        )
    )


async def refunds_recorded(session: AsyncSession, *, site_id: str, transaction_prefix: str) -> int:
    """Minor units of the refunds whose transaction id starts with ``transaction_prefix``."""
    total = await session.scalar(
        select(func.coalesce(func.sum(col(Payment.amount_minor)), 0)).where(
            col(Payment.site_id) == site_id,
            col(Payment.payment_type) == "refund",
            col(Payment.transaction_id).startswith(transaction_prefix, autoescape=True),
        )
    )
    return int(total or 0)
