"""Rate limiting (fixed one-minute windows) on the ``limits`` library, in memory or on Redis,
and the policy that says who pays for what (``RateLimitPolicy``).

The state is per process in memory; set ``DATASAAS_REDIS_URL`` to share it across workers and hosts.
The policy knows nothing of HTTP: ``kit.middleware`` hands it a key digest, an IP and a status.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from datasaas.errors import RateLimited


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


class KnownKeys:
    """Digests of keys that authenticated in this process recently (bounded, least recent out).

    Only used to spare such keys from the failed-authentication block of their IP; they are
    still looked up on every request, so revocation stays immediate.
    """

    def __init__(self, capacity: int = 10_000, ttl_seconds: float = 3_600) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl_seconds

    def add(self, digest: str) -> None:
        """Remember that ``digest`` authenticated now."""
        self._seen[digest] = time.monotonic() + self._ttl
        self._seen.move_to_end(digest)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def __contains__(self, digest: object) -> bool:
        expires = self._seen.get(digest) if isinstance(digest, str) else None
        return expires is not None and expires > time.monotonic()


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a request may proceed, the budget to report, and why not when refused."""

    state: RateLimitState
    refusal: str | None = None


class RateLimitPolicy:
    """Who pays for what: requests per key (or per IP without one), failed authentications
    per IP, and tracker events per IP (a batch costs its size).

    An IP whose failed-authentication budget is spent may not try keys this process has not
    seen authenticate; known keys pass (and are still looked up, so revocation stays
    immediate). Probes report the budget without spending it, so an orchestrator never sees 429.
    """

    AUTH_FAILURES = "auth_failure"

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        requests_per_minute: int,
        auth_failures_per_minute: int,
        events_per_minute: int,
    ) -> None:
        self.limiter = limiter
        self.known_keys = KnownKeys()
        self._requests = requests_per_minute
        self._auth_failures = auth_failures_per_minute
        self._events = events_per_minute

    async def admit(self, *, key_digest: str | None, ip: str, probe: bool) -> Admission:
        """Charge a request to its key (or IP); refuse an IP that keeps failing to authenticate."""
        if key_digest is not None and key_digest not in self.known_keys:
            # Before any database lookup: an IP that keeps failing may not try more keys.
            failures = await self.limiter.peek(self.AUTH_FAILURES, ip, self._auth_failures)
            if failures.remaining <= 0:
                refused = RateLimitState(False, failures.limit, 0, failures.reset_after)
                return Admission(
                    refused, "Too many failed authentications from this address; retry later."
                )
        namespace, identity = ("key", key_digest) if key_digest is not None else ("ip", ip)
        if probe:
            state = await self.limiter.peek(namespace, identity, self._requests)
        else:
            state = await self.limiter.hit(namespace, identity, self._requests)
        if not state.allowed:
            return Admission(
                state, f"Rate limit of {state.limit} requests per minute exceeded; retry later."
            )
        return Admission(state)

    async def settle(
        self, *, key_digest: str | None, ip: str, authenticated: bool, status: int
    ) -> None:
        """Charge a 401 to the IP's failed-authentication budget; remember a key that worked."""
        if status == 401:
            await self.limiter.hit(self.AUTH_FAILURES, ip, self._auth_failures)
        elif authenticated and key_digest is not None:
            self.known_keys.add(key_digest)

    async def spend_events(self, *, ip: str, cost: int) -> RateLimitState:
        """Charge ``cost`` tracker events to the IP and report the budget left."""
        return await self.limiter.hit("events", ip, self._events, cost=cost)

    @staticmethod
    def events_refused(state: RateLimitState) -> RateLimited:
        """The error answering a tracker whose event budget is spent."""
        return RateLimited(
            max(state.reset_after, 1),
            f"Rate limit of {state.limit} events per minute per client exceeded; retry later.",
        )
