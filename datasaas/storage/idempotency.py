"""Stored responses for ``Idempotency-Key`` replays.

A request first *claims* its key by inserting a placeholder row in its own transaction. A
concurrent request with the same key blocks on that row (PostgreSQL) or on the write lock
(SQLite) until the first commits, then finds the finished record and replays it. A request that
fails rolls its claim back, so the key stays unused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasaas.storage.models import IdempotencyRecord
from datasaas.storage.sql import insert_ignore

RETENTION = timedelta(hours=48)
"""Records live 48 hours, comfortably over the 24 hours the contract promises."""


async def claim(
    session: AsyncSession, *, api_key_id: str, key: str, request_hash: str, now: datetime
) -> IdempotencyRecord | None:
    """Claim a key for this request: None when claimed, else the finished record of another."""
    await session.execute(
        delete(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == api_key_id,
            col(IdempotencyRecord.created_at) <= now - RETENTION,
        )
    )
    inserted = await session.execute(
        insert_ignore(
            session,
            IdempotencyRecord,
            {
                "api_key_id": api_key_id,
                "key": key,
                "request_hash": request_hash,
                "status_code": 0,
                "response_body": "",
                "created_at": now,
            },
        )
    )
    if getattr(inserted, "rowcount", 0) == 1:
        return None
    result = await session.execute(
        select(IdempotencyRecord).where(
            col(IdempotencyRecord.api_key_id) == api_key_id, col(IdempotencyRecord.key) == key
        )
    )
    return result.scalar_one()


async def complete(
    session: AsyncSession, *, api_key_id: str, key: str, status_code: int, response_body: str
) -> None:
    """Store the response of a claimed key."""
    await session.execute(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.api_key_id) == api_key_id, col(IdempotencyRecord.key) == key)
        .values(status_code=status_code, response_body=response_body)
    )
