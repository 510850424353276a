"""Queries on sites and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import ApiKey, Site


async def get_site(session: AsyncSession, site_id: str) -> Site | None:
    """Return the site with this id, or None."""
    return await session.get(Site, site_id)


async def list_sites(session: AsyncSession) -> Sequence[Site]:
    """Return every site, oldest first."""
    result = await session.execute(select(Site).order_by(col(Site.created_at), col(Site.id)))
    return result.scalars().all()


async def has_sites(session: AsyncSession) -> bool:
    """Tell whether at least one site exists."""
    return (await session.execute(select(col(Site.id)).limit(1))).first() is not None


async def add(session: AsyncSession, row: Site | ApiKey) -> None:
    """Insert a site or key and flush, so constraint errors surface now."""
    session.add(row)
    await session.flush()


async def list_keys(session: AsyncSession, site_id: str) -> Sequence[ApiKey]:
    """Return a site's keys, oldest first, revoked ones included."""
    result = await session.execute(
        select(ApiKey)
        .where(col(ApiKey.site_id) == site_id)
        .order_by(col(ApiKey.created_at), col(ApiKey.id))
    )
    return result.scalars().all()


async def revoke_key(session: AsyncSession, key_id: str, at: datetime) -> ApiKey | None:
    """Mark a key revoked (idempotent) and return it, or None when it does not exist."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        return None
    if key.revoked_at is None:
        await session.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(revoked_at=at))
        key.revoked_at = at
    return key
