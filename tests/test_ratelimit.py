"""Rate-limit counters: per identity, one-minute windows, shared across processes via Redis."""

from __future__ import annotations

import os
import uuid

import pytest

from datasaas.ratelimit import RateLimiter, RateLimitPolicy

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


def _policy() -> RateLimitPolicy:
    return RateLimitPolicy(
        RateLimiter(), requests_per_minute=5, auth_failures_per_minute=2, events_per_minute=10
    )


async def test_policy_blocks_new_keys_from_an_ip_that_keeps_failing_but_not_known_ones() -> None:
    policy = _policy()
    assert (await policy.admit(key_digest="good", ip="1.2.3.4", probe=False)).refusal is None
    await policy.settle(key_digest="good", ip="1.2.3.4", authenticated=True, status=200)
    for guess in ("bad1", "bad2"):
        admitted = await policy.admit(key_digest=guess, ip="1.2.3.4", probe=False)
        assert admitted.refusal is None
        await policy.settle(key_digest=guess, ip="1.2.3.4", authenticated=False, status=401)
    refused = await policy.admit(key_digest="bad3", ip="1.2.3.4", probe=False)
    assert refused.refusal is not None
    assert "failed authentications" in refused.refusal
    assert not refused.state.allowed
    assert (await policy.admit(key_digest="good", ip="1.2.3.4", probe=False)).refusal is None
    assert (await policy.admit(key_digest="bad3", ip="5.6.7.8", probe=False)).refusal is None


async def test_policy_charges_requests_per_key_and_probes_nothing() -> None:
    policy = _policy()
    for _ in range(3):
        probe = await policy.admit(key_digest=None, ip="9.9.9.9", probe=True)
        assert probe.state.remaining == 5
    states = [await policy.admit(key_digest="k", ip="9.9.9.9", probe=False) for _ in range(6)]
    assert [s.refusal is None for s in states] == [True] * 5 + [False]
    assert "5 requests per minute" in (states[-1].refusal or "")
    # Another identity on the same IP has its own budget.
    assert (await policy.admit(key_digest=None, ip="9.9.9.9", probe=False)).refusal is None


async def test_policy_charges_event_batches_their_size() -> None:
    policy = _policy()
    assert (await policy.spend_events(ip="1.1.1.1", cost=8)).remaining == 2
    over = await policy.spend_events(ip="1.1.1.1", cost=3)
    assert not over.allowed
    refused = policy.events_refused(over)
    assert refused.status == 429
    assert refused.retry_after >= 1
