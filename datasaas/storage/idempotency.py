"""Stored responses for ``Idempotency-Key`` replays."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import IdempotencyRecord

RETENTION = timedelta(hours=48)
"""Records live 48 hours, comfortably over the 24 hours the contract promises."""


async def find(
    session: AsyncSession, *, api_key_id: str, key: str, now: datetime
) -> IdempotencyRecord | None:
    """Return the unexpired record for (api key, Idempotency-Key), or None."""
    result = await session.execute(
        select(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == api_key_id,
            col(IdempotencyRecord.key) == key,
            col(IdempotencyRecord.created_at) > now - RETENTION,
        )
    )
    return result.scalar_one_or_none()


async def save(session: AsyncSession, record: IdempotencyRecord) -> bool:
    """Store a record, replacing an expired one; False when a live one appeared concurrently."""
    await session.execute(
        delete(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == record.api_key_id,
            col(IdempotencyRecord.created_at) <= record.created_at - RETENTION,
        )
    )
    try:
        async with session.begin_nested():
            session.add(record)
            await session.flush()
    except IntegrityError:
        return False
    return True
