"""The ``Idempotency-Key`` protocol (Stripe's): a retried write replays its first answer.

A write that carries a key first *claims* it inside the write's own transaction (see
``storage.idempotency``); a concurrent retry blocks on that claim, then finds the finished record
and replays it. A key reused with a different request is a Conflict; a blank key is invalid.
The answer is stored as the exact bytes that were sent, so a replay is byte-for-byte the same.
Records are kept 48 hours, over the 24 hours the contract promises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import simplejson
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import Conflict, InvalidInput
from datasaas.storage import idempotency as records

HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Answer:
    """A rendered answer to a write: its status and its exact body."""

    status_code: int
    body: bytes
    replayed: bool = False


def fingerprint(operation: str, site_id: str, body: dict[str, Any]) -> str:
    """Return the hash that tells a retry of a request from a different request."""
    canonical = simplejson.dumps([operation, site_id, body], use_decimal=True, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def answer_once(
    session: AsyncSession,
    *,
    api_key_id: str,
    key: str | None,
    request_fingerprint: str,
    work: Callable[[], Awaitable[Answer]],
) -> Answer:
    """Run ``work`` in the caller's transaction, or replay the answer stored under ``key``."""
    if key is None:
        return await work()
    if not key.strip():
        raise InvalidInput.for_field(HEADER, "must not be empty")
    stored = await records.claim(
        session,
        api_key_id=api_key_id,
        key=key,
        request_hash=request_fingerprint,
        now=datetime.now(UTC),
    )
    if stored is not None:
        if stored.request_hash != request_fingerprint:
            raise Conflict(f"This {HEADER} was already used with a different request.")
        return Answer(stored.status_code, stored.response_body.encode(), replayed=True)
    answer = await work()
    await records.complete(
        session,
        api_key_id=api_key_id,
        key=key,
        status_code=answer.status_code,
        response_body=answer.body.decode(),
    )
    return answer
