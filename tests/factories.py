"""Typed keyword-only factories for test data, written through the resolvers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.payments import PaymentIn
from datasaas.resolvers.sites import IssuedKey, Scope
from datasaas.storage import visitors as visitor_store
from datasaas.storage.engine import Database
from datasaas.storage.models import (
    Goal,
    GoalCompletion,
    IdempotencyRecord,
    Pageview,
    Payment,
    Site,
    Visitor,
    VisitorSlot,
)


async def make_site(
    database: Database,
    *,
    site_id: str = "ds_test",
    domain: str = "example.com",
    currency: str = "USD",
    name: str = "Test site",
) -> Site:
    """Create a site."""
    async with database.write() as session:
        return await site_resolvers.create_site(
            session, name=name, domain=domain, site_id=site_id, currency=currency
        )


async def make_key(
    database: Database, *, site_id: str = "ds_test", scope: Scope = Scope.READ_WRITE
) -> IssuedKey:
    """Create an API key and return it with its secret."""
    async with database.write() as session:
        return await site_resolvers.create_key(session, site_id=site_id, scope=scope)


def bearer(key: IssuedKey | str) -> dict[str, str]:
    """Return the Authorization header for a key."""
    secret = key if isinstance(key, str) else key.secret
    return {"Authorization": f"Bearer {secret}"}


async def make_pageview(
    database: Database,
    *,
    visitor_id: str,
    at: datetime,
    site_id: str = "ds_test",
    url: str = "https://example.com/",
) -> None:
    """Store a pageview (no attribution) and mark the visitor active, as ingestion does."""
    async with database.write() as session:
        key = await visitor_store.visitor_key(session, site_id=site_id, uid=visitor_id, seen_at=at)
        session.add(
            Pageview(
                site_id=site_id,
                visitor_id=key,
                session_id="s_" + visitor_id,
                occurred_at=at,
                url=url,
            )
        )
        await visitor_store.mark_active(session, site_id=site_id, visitor_id=key, at=at)


WRITTEN_TABLES: dict[str, Any] = {
    "payment": Payment,
    "goal_completion": GoalCompletion,
    "goal": Goal,
    "visitor": Visitor,
    "visitor_slot": VisitorSlot,
    "idempotency_record": IdempotencyRecord,
}


async def visitor_by_uid(session: AsyncSession, *, site_id: str, uid: str) -> Visitor | None:
    """Return a stored visitor by its client id (tests inspect rows the API does not show)."""
    result = await session.execute(
        select(Visitor).where(col(Visitor.site_id) == site_id, col(Visitor.uid) == uid)
    )
    return result.scalar_one_or_none()


async def row_counts(database: Database) -> dict[str, int]:
    """Rows per table that a write may touch (to prove a refused write wrote nothing)."""
    async with database.read() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in WRITTEN_TABLES.items()
        }


async def pay(database: Database, txn: str, at: datetime, amount: str, **extra: str) -> None:
    """Record a USD payment ``txn`` of ``amount`` paid at ``at`` on ``ds_test`` through the
    resolver (``visitor`` defaults to ``v<txn>``; other fields as ``PaymentIn`` names them)."""
    async with database.write() as session:
        site = await site_resolvers.require_site(session, "ds_test")
        await payment_resolvers.record_payment(
            session,
            site=site,
            payment=PaymentIn(
                visitor_id=extra.pop("visitor", f"v{txn}"),
                amount=amount,
                currency="USD",
                transaction_id=txn,
                paid_at=at.isoformat(),
                **extra,
            ),
        )
