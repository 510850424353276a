"""Rate limiting (fixed one-minute windows) on the ``limits`` library, in memory or on Redis.

The state is per process in memory; set ``DATASAAS_REDIS_URL`` to share it across workers and hosts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """The outcome of one hit, and what the ``RateLimit-*`` headers say about it."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        """Return the ``RateLimit-*`` headers (plus ``Retry-After`` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


class RateLimiter:
    """Counts hits per (namespace, identity) in one-minute windows."""

    def __init__(self, redis_url: str | None = None) -> None:
        storage: Storage
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            shared = storage_from_string(uri)
            if not isinstance(shared, Storage):
                raise ValueError(f"not an asyncio-capable limits storage: {redis_url}")
            storage = shared
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = FixedWindowRateLimiter(storage)

    async def hit(
        self, namespace: str, identity: str, per_minute: int, cost: int = 1
    ) -> RateLimitState:
        """Spend ``cost`` from the identity's budget and report what is left."""
        item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        allowed = await self._limiter.hit(item, identity, cost=cost)
        stats = await self._limiter.get_window_stats(item, identity)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return RateLimitState(allowed, per_minute, max(0, stats.remaining), reset_after)

    async def peek(self, namespace: str, identity: str, per_minute: int) -> RateLimitState:
        """Report the identity's budget without spending any of it."""
        item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        stats = await self._limiter.get_window_stats(item, identity)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return RateLimitState(True, per_minute, max(0, stats.remaining), reset_after)

    async def reset(self) -> None:
        """Forget every counter (tests and admin use)."""
        await self._storage.reset()
