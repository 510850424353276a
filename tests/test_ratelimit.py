"""Rate-limit counters: per identity, one-minute windows, shared across processes via Redis."""

from __future__ import annotations

import os
import uuid

import pytest

from datasaas.ratelimit import RateLimiter

REDIS_URL = os.environ.get("DATASAAS_TEST_REDIS_URL", "")


async def test_memory_limiter_counts_per_identity_and_cost() -> None:
    limiter = RateLimiter()
    first = await limiter.hit("key", "a", per_minute=3)
    assert (first.allowed, first.remaining, first.limit) == (True, 2, 3)
    assert 0 < first.reset_after <= 60
    batch = await limiter.hit("key", "a", per_minute=3, cost=2)
    assert (batch.allowed, batch.remaining) == (True, 0)
    refused = await limiter.hit("key", "a", per_minute=3)
    assert not refused.allowed
    assert refused.headers()["Retry-After"] == str(max(refused.reset_after, 1))
    other = await limiter.hit("key", "b", per_minute=3)
    assert other.allowed


@pytest.mark.skipif(not REDIS_URL, reason="DATASAAS_TEST_REDIS_URL is not set")
async def test_redis_limiter_is_shared_between_instances() -> None:
    # Two limiters stand for two worker processes of one deployment.
    identity = uuid.uuid4().hex
    one, two = RateLimiter(REDIS_URL), RateLimiter(REDIS_URL)
    assert (await one.hit("key", identity, per_minute=2)).allowed
    assert (await two.hit("key", identity, per_minute=2)).allowed
    assert not (await one.hit("key", identity, per_minute=2)).allowed
