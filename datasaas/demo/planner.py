"""The demo traffic planner: a site's visitors, pageviews, goals and payments, drawn in memory.

Pure and deterministic: everything is drawn from one ``random.Random(seed)`` in a fixed order,
with instants relative to ``now``, so the same arguments give the same ``Traffic``. Ids (visitor
UUIDs, transaction ids) come from the same stream; the first visitor's is drawn before any
instant, so a seed planned again later repeats at least that id and the writer can refuse the
rerun. No I/O: ``writer`` stores the result.

The model (tables in ``data``): a visitor's first touch (source, country and city, device),
sessions of a few pageviews, the funnel signup → purchase (plus newsletter_subscribe), renewals
while subscribers stay, some refunds (full and partial) naming the original transaction, and a
few long-standing subscribers whose renewals fall inside the window. Payments are planned as the
``PaymentIn`` that ``record_payment`` receives from the API.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta

from datasaas.attribution import referrer_source
from datasaas.billing import PaymentType
from datasaas.demo.data import (
    COUNTRIES,
    DEVICE_CONVERSION,
    DEVICES,
    GROWTH,
    HACKER_NEWS,
    HN_SPIKE,
    HOURLY,
    LONG_STANDING,
    NEWSLETTER_LISTS,
    NEWSLETTER_RATE,
    NEWSLETTER_REPEAT,
    NEXT_PAGES,
    NO_CITY,
    PAGES,
    PLANS,
    PURCHASE_RATE,
    REFUND_ONE_TIME,
    REFUND_RECURRING,
    RETENTION,
    SIGNUP_RATE,
    SOURCES,
    WEEKDAY,
    Country,
    Plan,
)
from datasaas.money import format_major
from datasaas.resolvers.payments import PaymentIn

__all__ = ["GoalEvent", "PaymentEvent", "Traffic", "Visit", "plan_traffic"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GoalEvent:
    at: datetime
    name: str
    uid: str
    url: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    at: datetime
    payment: PaymentIn


@dataclass(frozen=True, slots=True)
class Visit:
    session_id: str
    instants: list[datetime]


@dataclass(slots=True)
class Traffic:
    visitors: list[dict[str, Any]] = field(default_factory=list)
    pageviews: list[dict[str, Any]] = field(default_factory=list)  # "uid" in place of visitor_id
    goals: list[GoalEvent] = field(default_factory=list)
    payments: list[PaymentEvent] = field(default_factory=list)


class _Planner:
    """Draws a site's traffic from one random stream; the draw order fixes the result."""

    def __init__(self, *, rng: random.Random, now: datetime, days: int, domain: str) -> None:
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=days)
        self.days = days
        self.domain = domain
        self.traffic = Traffic()
        self.launch_day = rng.randrange(days)
        self._day_cum = list(
            accumulate(
                WEEKDAY[(self.start + timedelta(days=d)).weekday()] * (1 + GROWTH * d / days)
                for d in range(days + 1)
            )
        )
        self._hour_cum = list(accumulate(HOURLY))
        self._source_cum = list(accumulate(s.weight for s in SOURCES))
        self._country_cum = list(accumulate(c.weight for c in COUNTRIES))
        self._device_cum = list(accumulate(d.weight for d in DEVICES))
        self._next_pages = list(NEXT_PAGES)
        self._next_cum = list(accumulate(NEXT_PAGES.values()))

    # -- drawing helpers

    def _pick(self, options: Sequence[T], cum_weights: Sequence[float]) -> T:
        return self.rng.choices(options, cum_weights=cum_weights)[0]

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(96):024x}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _url(self, path: str, query: str = "") -> str:
        return f"https://{self.domain}{path}{query}"

    def _moment(self, country: Country, day: int | None = None) -> datetime:
        """An instant in the window, by local time-of-day and day-of-week rhythm."""
        offset = timedelta(hours=country.utc_offset)
        local_start = (self.start + offset).replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(20):
            d = day if day is not None else self._pick(range(self.days + 1), self._day_cum)
            hour = self._pick(range(24), self._hour_cum)
            local = local_start + timedelta(days=d, hours=hour, seconds=self.rng.randrange(3600))
            at = local - offset
            if self.start <= at < self.now:
                return at
            day = None  # the launch day may lie partly outside the window
        return self.start + timedelta(seconds=self.rng.randrange(self.days * 86400))

    def _later(self, at: datetime, *, min_s: float, max_s: float) -> datetime:
        return at + timedelta(seconds=round(self.rng.uniform(min_s, max_s)))

    # -- visitors

    def visitor(self) -> None:
        """Plan one visitor: first touch, sessions, goals and payments."""
        rng = self.rng
        uid = self._uuid()
        source = self._pick(SOURCES, self._source_cum)
        country = self._pick(COUNTRIES, self._country_cum)
        city = None if rng.random() < NO_CITY else _zipf_choice(rng, country.cities)
        device = self._pick(DEVICES, self._device_cum)
        long_standing = rng.random() < LONG_STANDING
        if long_standing:
            first_at = self.start - timedelta(seconds=rng.randrange(5 * 86400, 150 * 86400))
        else:
            spike = source.referrer == HACKER_NEWS and rng.random() < HN_SPIKE
            first_at = self._moment(country, self.launch_day if spike else None)
        landing = rng.choice(source.landings)
        query = ""
        if source.utm is not None:
            utm_source, utm_medium, utm_campaign = source.utm
            query = f"?utm_source={utm_source}&utm_medium={utm_medium}&utm_campaign={utm_campaign}"
        landing_url = self._url(landing, query)
        self.traffic.visitors.append(
            {
                "uid": uid,
                "first_seen_at": first_at,
                "first_pageview_at": first_at,
                "landing_url": landing_url,
                "referrer": source.referrer,
                "source": referrer_source(
                    source.referrer,
                    utm_source=source.utm[0] if source.utm else None,
                    site_domain=self.domain,
                ),
                "utm_source": source.utm[0] if source.utm else None,
                "utm_medium": source.utm[1] if source.utm else None,
                "utm_campaign": source.utm[2] if source.utm else None,
                "country": country.name,
                "city": city,
                "browser": device.browser,
                "os": device.os,
                "device_type": device.device_type,
            }
        )
        first = self._session(uid, first_at, landing=landing_url, referrer=source.referrer)
        if long_standing:
            self._long_standing(uid, country, first)
            return
        visits = [first]
        at = first_at
        while rng.random() < 0.45 and len(visits) < 8:
            at = self._later(at, min_s=3600, max_s=rng.expovariate(1 / (3 * 86400)) + 7200)
            if at >= self.now:
                break
            visit = self._session(uid, at)
            if visit.instants:
                visits.append(visit)
        rate = SIGNUP_RATE * source.conversion * DEVICE_CONVERSION[device.device_type]
        rate *= 1 + 0.3 * (len(visits) - 1)
        if rng.random() < rate:
            visit = visits[-1] if rng.random() < 0.6 else rng.choice(visits)
            signed_up = self._signup(uid, visit)
            if signed_up is not None and rng.random() < PURCHASE_RATE:
                bought = self._later(signed_up, min_s=600, max_s=rng.expovariate(1 / 129600) + 900)
                if bought < self.now:
                    self._purchase(uid, bought, country.currency)
        if rng.random() < NEWSLETTER_RATE * (2 if landing.startswith("/blog/") else 1):
            first_visit = rng.randrange(len(visits))
            for number, topic in enumerate(NEWSLETTER_LISTS):
                if number and rng.random() >= NEWSLETTER_REPEAT:
                    break
                visit = rng.choice(visits[first_visit:])
                at = self._later(rng.choice(visit.instants), min_s=20, max_s=240)
                if at < self.now:
                    self._goal(at, "newsletter_subscribe", uid, "/", {"list": topic})

    def _session(
        self,
        uid: str,
        at: datetime,
        *,
        landing: str | None = None,
        referrer: str | None = None,
        pages: Sequence[str] = (),
    ) -> Visit:
        """Plan one session's pageviews (none when ``at`` is not before now)."""
        rng = self.rng
        session_id = self._uuid()
        urls = [landing or self._url(self._pick(self._next_pages, self._next_cum))]
        if not pages and rng.random() > 0.45:  # 45 % of sessions bounce
            count = 1 + min(int(rng.expovariate(0.45)) + 1, 11)
            urls += [self._url(self._pick(self._next_pages, self._next_cum)) for _ in range(count)]
        urls += [self._url(page) for page in pages]
        visit = Visit(session_id, [])
        previous = referrer
        for url in urls:
            if at >= self.now:
                break
            self._pageview(uid, visit, at, url, previous)
            previous = url
            at = self._later(at, min_s=8, max_s=rng.expovariate(1 / 90) + 15)
        return visit

    def _pageview(
        self, uid: str, visit: Visit, at: datetime, url: str, referrer: str | None
    ) -> None:
        path = url.removeprefix(f"https://{self.domain}").split("?", 1)[0]
        self.traffic.pageviews.append(
            {
                "uid": uid,
                "session_id": visit.session_id,
                "occurred_at": at,
                "url": url,
                "hostname": self.domain,
                "pathname": path,
                "referrer": referrer,
                "title": PAGES.get(path),
            }
        )
        visit.instants.append(at)

    def _goal(self, at: datetime, name: str, uid: str, path: str, metadata: dict[str, Any]) -> None:
        self.traffic.goals.append(GoalEvent(at, name, uid, self._url(path), metadata))

    def _signup(self, uid: str, visit: Visit) -> datetime | None:
        """The signup page at the end of ``visit``, then the signup goal."""
        at = self._later(visit.instants[-1], min_s=15, max_s=120)
        if at >= self.now:
            return None
        self._pageview(uid, visit, at, self._url("/signup"), None)
        done = self._later(at, min_s=30, max_s=240)
        if done >= self.now:
            return None
        method = self.rng.choice(("email", "email", "google", "github"))
        self._goal(done, "signup", uid, "/signup", {"plan": "free", "method": method})
        return done

    def _purchase(
        self, uid: str, at: datetime, currency: str, *, recurring_only: bool = False
    ) -> None:
        """A checkout visit, the purchase goal and the payments of the chosen plan."""
        visit = self._session(uid, at, pages=("/pricing", "/checkout"))
        if len(visit.instants) < 3:
            return
        paid_at = self._later(visit.instants[-1], min_s=30, max_s=300)
        if paid_at >= self.now:
            return
        plans = [plan for plan in PLANS if plan.recurring or not recurring_only]
        plan = self.rng.choices(plans, weights=[plan.weight for plan in plans])[0]
        metadata = {"plan": plan.product, "currency": currency}
        self._goal(paid_at, "purchase", uid, "/checkout", metadata)
        price = plan.prices[currency]
        if not plan.recurring:
            charge = self._payment(uid, paid_at, price, currency, PaymentType.ONE_TIME, plan)
            if self.rng.random() < REFUND_ONE_TIME:
                partial = self.rng.random() < 0.3
                self._refund(uid, charge, price // 2 if partial else price, currency)
            return
        month = 0
        while True:
            charged_at = paid_at + relativedelta(months=month)
            if charged_at >= self.now:
                break
            charge = self._payment(uid, charged_at, price, currency, PaymentType.RECURRING, plan)
            if self.rng.random() < REFUND_RECURRING:
                self._refund(uid, charge, price, currency)
                break
            if self.rng.random() > RETENTION:
                break
            month += 1

    def _payment(
        self,
        uid: str,
        at: datetime,
        minor: int,
        currency: str,
        kind: PaymentType,
        plan: Plan,
    ) -> PaymentEvent:
        event = PaymentEvent(
            at,
            PaymentIn(
                visitor_id=uid,
                amount=format_major(minor, currency),
                currency=currency,
                transaction_id=self._id("ch_"),
                payment_type=kind.value,
                product_name=plan.product,
                paid_at=at.isoformat(),
            ),
        )
        self.traffic.payments.append(event)
        return event

    def _refund(self, uid: str, charge: PaymentEvent, minor: int, currency: str) -> None:
        at = self._later(charge.at, min_s=3600, max_s=10 * 86400)
        if at >= self.now:
            return
        refund = PaymentIn(
            visitor_id=uid,
            amount=format_major(minor, currency),
            currency=currency,
            transaction_id=self._id("re_"),
            payment_type=PaymentType.REFUND.value,
            product_name=charge.payment.product_name,
            paid_at=at.isoformat(),
            original_transaction_id=charge.payment.transaction_id,
        )
        self.traffic.payments.append(PaymentEvent(at, refund))

    def _long_standing(self, uid: str, country: Country, first: Visit) -> None:
        """A subscriber from before the window: history, renewals, and visits in the window."""
        signed_up = self._later(first.instants[-1], min_s=60, max_s=900)
        self._goal(signed_up, "signup", uid, "/signup", {"plan": "free", "method": "email"})
        bought = self._later(signed_up, min_s=3600, max_s=3 * 86400)
        self._purchase(uid, bought, country.currency, recurring_only=True)
        for _ in range(self.rng.randint(1, 3)):
            self._session(uid, self._moment(country))


def _zipf_choice(rng: random.Random, options: Sequence[T]) -> T:
    """Pick from ``options`` with weights 1, 1/2, 1/3, ... (big cities first)."""
    return rng.choices(options, weights=[1 / (rank + 1) for rank in range(len(options))])[0]


def plan_traffic(*, domain: str, visitors: int, days: int, seed: int, now: datetime) -> Traffic:
    """Plan ``visitors`` visitors over the ``days`` days before ``now`` (pure, deterministic)."""
    planner = _Planner(rng=random.Random(seed), now=now, days=days, domain=domain)
    for _ in range(visitors):
        planner.visitor()
    traffic = planner.traffic
    traffic.goals.sort(key=lambda g: g.at)
    traffic.payments.sort(key=lambda p: p.at)
    return traffic
