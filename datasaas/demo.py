"""The demo site and its generated traffic: ``serve --demo`` and ``datasaas demo``.

``ensure_demo`` creates the site ``ds_demo`` with two keys on an empty database and fills it
with a month of traffic; ``generate`` fills any site (creating it when missing).

Traffic is planned in memory from ``random.Random(seed)`` with instants relative to ``now``
truncated to the minute, so the same seed and the same ``now`` give the same rows; ids (visitor
UUIDs, transaction ids) depend on the seed only, so running a seed twice on one site is refused
instead of mixing two copies. Visitors (first-touch attributes set directly: demo traffic has no
real IP or User-Agent) and pageviews are bulk-inserted; goal completions and payments go
through the resolvers (``store_completion``, ``record_payment``) like API writes. A run is one
transaction: it fills the site completely or not at all.

The model: sources (search, social, Hacker News with a launch-day spike, newsletter and paid
UTM campaigns, direct), countries with their cities and time zones, a desktop/mobile/tablet
mix, weekday/weekend and local time-of-day rhythms with slow growth, sessions of a few
pageviews, the funnel signup → purchase (plus newsletter_subscribe), one-time and monthly
recurring plans priced in USD, EUR, GBP or JPY by country, renewals while subscribers stay,
some refunds (full and partial) naming the original transaction, and a few long-standing
subscribers whose renewals fall inside the window.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, Final, TypeVar

from dateutil.relativedelta import relativedelta
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import Conflict, InvalidInput
from datasaas.money import format_major
from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.goals import store_completion
from datasaas.resolvers.payments import PaymentIn, PaymentType, record_payment
from datasaas.resolvers.sites import Scope
from datasaas.storage import events as event_store
from datasaas.storage import sites as site_store
from datasaas.storage.engine import Database
from datasaas.storage.models import Site
from datasaas.tracking.attribution import referrer_source

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DEFAULT_VISITORS",
    "DEMO_DOMAIN",
    "DEMO_SITE_ID",
    "DemoSummary",
    "ensure_demo",
    "generate",
]

DEMO_SITE_ID: Final = "ds_demo"
DEMO_DOMAIN: Final = "demo.example.com"
DEFAULT_VISITORS: Final = 2000
DEFAULT_DAYS: Final = 30
DEFAULT_SEED: Final = 42

T = TypeVar("T")


# ---------------------------------------------------------------------------- The model


@dataclass(frozen=True, slots=True)
class _Source:
    weight: float
    referrer: str | None
    utm: tuple[str, str, str] | None  # utm_source, utm_medium, utm_campaign
    landings: tuple[str, ...]
    conversion: float  # signup likelihood relative to the average visitor


_BLOG_LAUNCH = "/blog/launch-week"
_BLOG_COUNTING = "/blog/how-we-count-visitors"
_BLOG_PRIVACY = "/blog/privacy-friendly-analytics"
_DOCS = "/docs/getting-started"
_HN = "https://news.ycombinator.com/item?id=41829137"

SOURCES: Final = (
    _Source(30, None, None, ("/", "/", "/pricing"), 1.2),
    _Source(24, "https://www.google.com/", None, ("/", _DOCS, _BLOG_PRIVACY, "/features"), 1.1),
    _Source(3, "https://www.google.com/", ("google", "cpc", "brand"), ("/", "/pricing"), 1.4),
    _Source(7, "https://twitter.com/", None, ("/", _BLOG_LAUNCH, "/changelog"), 0.8),
    _Source(6, _HN, None, (_BLOG_COUNTING,), 0.5),
    _Source(4, "https://www.reddit.com/r/SaaS/", None, (_BLOG_COUNTING, "/"), 0.7),
    _Source(4, "https://github.com/acme/analytics", None, (_DOCS, "/"), 1.0),
    _Source(3, "https://duckduckgo.com/", None, ("/", _BLOG_PRIVACY), 1.1),
    _Source(3, "https://www.bing.com/", None, ("/", "/features"), 0.9),
    _Source(3, "https://www.linkedin.com/", None, ("/", _BLOG_LAUNCH), 0.9),
    _Source(2, "https://www.producthunt.com/posts/acme-analytics", None, ("/",), 1.5),
    _Source(6, None, ("newsletter", "email", "weekly_digest"), (_BLOG_LAUNCH, "/changelog"), 2.0),
)

PAGES: Final = {
    "/": "Acme Analytics — simple, privacy-friendly analytics",
    "/pricing": "Pricing — Acme Analytics",
    "/features": "Features — Acme Analytics",
    _DOCS: "Getting started — Acme Analytics docs",
    "/docs/goals": "Tracking goals — Acme Analytics docs",
    "/docs/revenue": "Revenue attribution — Acme Analytics docs",
    _BLOG_LAUNCH: "Launch week recap — Acme Analytics blog",
    _BLOG_COUNTING: "How we count visitors without cookies — Acme Analytics blog",
    _BLOG_PRIVACY: "Privacy-friendly analytics in 2026 — Acme Analytics blog",
    "/changelog": "Changelog — Acme Analytics",
    "/about": "About us — Acme Analytics",
    "/signup": "Create your account — Acme Analytics",
    "/checkout": "Checkout — Acme Analytics",
}
# Where visitors go next within a session.
NEXT_PAGES: Final = {
    "/pricing": 5,
    "/features": 3,
    "/": 3,
    _DOCS: 3,
    "/docs/goals": 2,
    "/docs/revenue": 1,
    "/changelog": 1,
    "/about": 1,
    _BLOG_COUNTING: 1,
    _BLOG_PRIVACY: 1,
}


@dataclass(frozen=True, slots=True)
class _Country:
    weight: float
    name: str
    cities: tuple[str, ...]  # most visited first
    utc_offset: float  # hours, a typical offset for the country's population
    currency: str


_US_CITIES: Final = (
    "New York", "San Francisco", "Los Angeles", "Chicago", "Austin", "Seattle", "Boston",
)  # fmt: skip
COUNTRIES: Final = (
    _Country(34, "United States", _US_CITIES, -6, "USD"),
    _Country(9, "United Kingdom", ("London", "Manchester", "Bristol", "Edinburgh"), 0, "GBP"),
    _Country(8, "Germany", ("Berlin", "Munich", "Hamburg", "Cologne"), 1, "EUR"),
    _Country(7, "India", ("Bengaluru", "Mumbai", "New Delhi", "Pune"), 5.5, "USD"),
    _Country(5, "Canada", ("Toronto", "Vancouver", "Montreal"), -5, "USD"),
    _Country(5, "France", ("Paris", "Lyon", "Toulouse"), 1, "EUR"),
    _Country(4, "Japan", ("Tokyo", "Osaka", "Yokohama"), 9, "JPY"),
    _Country(3, "Netherlands", ("Amsterdam", "Rotterdam", "Utrecht"), 1, "EUR"),
    _Country(3, "Brazil", ("São Paulo", "Rio de Janeiro", "Belo Horizonte"), -3, "USD"),
    _Country(3, "Australia", ("Sydney", "Melbourne", "Brisbane"), 10, "USD"),
    _Country(3, "Spain", ("Madrid", "Barcelona", "Valencia"), 1, "EUR"),
    _Country(2, "Sweden", ("Stockholm", "Gothenburg", "Malmö"), 1, "EUR"),
    _Country(2, "Poland", ("Warsaw", "Kraków", "Wrocław"), 1, "EUR"),
    _Country(1, "Singapore", ("Singapore",), 8, "USD"),
)
_NO_CITY: Final = 0.05  # GeoIP often knows the country but not the city


@dataclass(frozen=True, slots=True)
class _Device:
    weight: float
    browser: str
    os: str
    device_type: str


DEVICES: Final = (
    _Device(16, "Chrome", "macOS", "desktop"),
    _Device(17, "Chrome", "Windows", "desktop"),
    _Device(8, "Safari", "macOS", "desktop"),
    _Device(6, "Edge", "Windows", "desktop"),
    _Device(3, "Firefox", "Windows", "desktop"),
    _Device(1.5, "Firefox", "macOS", "desktop"),
    _Device(1.5, "Firefox", "Linux", "desktop"),
    _Device(2, "Chrome", "Linux", "desktop"),
    _Device(1, "Chrome", "ChromeOS", "desktop"),
    _Device(0.5, "Opera", "Windows", "desktop"),
    _Device(20, "Safari", "iOS", "mobile"),
    _Device(13, "Chrome", "Android", "mobile"),
    _Device(2, "Chrome", "iOS", "mobile"),
    _Device(2, "Samsung Internet", "Android", "mobile"),
    _Device(0.5, "Firefox", "Android", "mobile"),
    _Device(3, "Safari", "iOS", "tablet"),
    _Device(1, "Chrome", "Android", "tablet"),
)
DEVICE_CONVERSION: Final = {"desktop": 1.0, "mobile": 0.5, "tablet": 0.8}


@dataclass(frozen=True, slots=True)
class _Plan:
    product: str
    recurring: bool
    weight: float
    prices: dict[str, int]  # minor units per currency


PLANS: Final = (
    _Plan("Lifetime", False, 30, {"USD": 14900, "EUR": 13900, "GBP": 11900, "JPY": 22000}),
    _Plan("Pro monthly", True, 55, {"USD": 2900, "EUR": 2700, "GBP": 2300, "JPY": 4400}),
    _Plan("Team monthly", True, 15, {"USD": 9900, "EUR": 9200, "GBP": 7900, "JPY": 15000}),
)

# Local time of day (0-23 h) and day of week (Monday first) traffic weights.
HOURLY: Final = (
    0.20, 0.12, 0.08, 0.06, 0.06, 0.10, 0.25, 0.50, 0.80, 1.00, 1.05, 1.00,
    0.95, 1.00, 1.05, 1.00, 0.90, 0.80, 0.70, 0.65, 0.60, 0.55, 0.45, 0.30,
)  # fmt: skip
WEEKDAY: Final = (1.0, 1.05, 1.05, 1.0, 0.9, 0.6, 0.65)
GROWTH: Final = 0.35  # the last day gets 35 % more traffic than the first

SIGNUP_RATE: Final = 0.08
PURCHASE_RATE: Final = 0.32  # of signups
NEWSLETTER_RATE: Final = 0.04
# Subscribers who come back often sign up to another list: goals completed more than once per
# visitor, so a goal's unique_visitors is below its completion_count, as in the reference.
NEWSLETTER_LISTS: Final = ("product_updates", "weekly_digest", "changelog")
NEWSLETTER_REPEAT: Final = 0.4
RETENTION: Final = 0.9  # a subscriber renews the next month
LONG_STANDING: Final = 0.02  # visitors who subscribed before the window
REFUND_ONE_TIME: Final = 0.12
REFUND_RECURRING: Final = 0.05
HN_SPIKE: Final = 0.7  # share of Hacker News visitors arriving on the launch day


# ---------------------------------------------------------------------------- The plan


@dataclass(frozen=True, slots=True)
class _GoalEvent:
    at: datetime
    name: str
    uid: str
    url: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _PaymentEvent:
    at: datetime
    payment: PaymentIn


@dataclass(frozen=True, slots=True)
class _Visit:
    session_id: str
    instants: list[datetime]


@dataclass(slots=True)
class _Traffic:
    visitors: list[dict[str, Any]] = field(default_factory=list)
    pageviews: list[dict[str, Any]] = field(default_factory=list)  # "uid" in place of visitor_id
    goals: list[_GoalEvent] = field(default_factory=list)
    payments: list[_PaymentEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run wrote."""

    site_id: str
    visitors: int
    pageviews: int
    goal_completions: int
    payments: int
    refunds: int


class _Planner:
    """Draws a site's traffic from one random stream; the draw order fixes the result."""

    def __init__(self, *, rng: random.Random, now: datetime, days: int, domain: str) -> None:
        self.rng = rng
        self.now = now
        self.start = now - timedelta(days=days)
        self.days = days
        self.domain = domain
        self.traffic = _Traffic()
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

    def _moment(self, country: _Country, day: int | None = None) -> datetime:
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
        city = None if rng.random() < _NO_CITY else _zipf_choice(rng, country.cities)
        device = self._pick(DEVICES, self._device_cum)
        long_standing = rng.random() < LONG_STANDING
        if long_standing:
            first_at = self.start - timedelta(seconds=rng.randrange(5 * 86400, 150 * 86400))
        else:
            spike = source.referrer == _HN and rng.random() < HN_SPIKE
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
    ) -> _Visit:
        """Plan one session's pageviews (none when ``at`` is not before now)."""
        rng = self.rng
        session_id = self._uuid()
        urls = [landing or self._url(self._pick(self._next_pages, self._next_cum))]
        if not pages and rng.random() > 0.45:  # 45 % of sessions bounce
            count = 1 + min(int(rng.expovariate(0.45)) + 1, 11)
            urls += [self._url(self._pick(self._next_pages, self._next_cum)) for _ in range(count)]
        urls += [self._url(page) for page in pages]
        visit = _Visit(session_id, [])
        previous = referrer
        for url in urls:
            if at >= self.now:
                break
            self._pageview(uid, visit, at, url, previous)
            previous = url
            at = self._later(at, min_s=8, max_s=rng.expovariate(1 / 90) + 15)
        return visit

    def _pageview(
        self, uid: str, visit: _Visit, at: datetime, url: str, referrer: str | None
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
        self.traffic.goals.append(_GoalEvent(at, name, uid, self._url(path), metadata))

    def _signup(self, uid: str, visit: _Visit) -> datetime | None:
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
        plan: _Plan,
    ) -> _PaymentEvent:
        event = _PaymentEvent(
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

    def _refund(self, uid: str, charge: _PaymentEvent, minor: int, currency: str) -> None:
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
        self.traffic.payments.append(_PaymentEvent(at, refund))

    def _long_standing(self, uid: str, country: _Country, first: _Visit) -> None:
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


def plan_traffic(*, domain: str, visitors: int, days: int, seed: int, now: datetime) -> _Traffic:
    """Plan ``visitors`` visitors over the ``days`` days before ``now`` (pure, deterministic)."""
    planner = _Planner(rng=random.Random(seed), now=now, days=days, domain=domain)
    for _ in range(visitors):
        planner.visitor()
    traffic = planner.traffic
    traffic.goals.sort(key=lambda g: g.at)
    traffic.payments.sort(key=lambda p: p.at)
    return traffic


# ---------------------------------------------------------------------------- Writing


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def _fill(
    session: AsyncSession,
    *,
    site: Site,
    visitors: int,
    days: int,
    seed: int,
    now: datetime,
    console: Console,
) -> DemoSummary:
    """Plan and write the traffic of one run inside the caller's transaction."""
    if visitors < 1 or days < 1:
        raise InvalidInput("The demo needs at least one visitor and one day.")
    traffic = plan_traffic(domain=site.domain, visitors=visitors, days=days, seed=seed, now=now)
    uids = [row["uid"] for row in traffic.visitors]
    if await event_store.existing_uids(session, site_id=site.id, uids=uids):
        raise Conflict(
            f"Site '{site.id}' already holds the demo data of seed {seed}; pass another --seed."
        )
    total = len(traffic.visitors) + len(traffic.pageviews)
    total += len(traffic.goals) + len(traffic.payments)
    with _progress(console) as progress:
        task = progress.add_task("Visitors", total=total)
        keys = await event_store.insert_visitors(session, site_id=site.id, rows=traffic.visitors)
        progress.update(task, advance=len(traffic.visitors), description="Pageviews")
        step = 2000
        for start in range(0, len(traffic.pageviews), step):
            chunk = traffic.pageviews[start : start + step]
            rows = []
            for planned in chunk:
                row = dict(planned, site_id=site.id)
                row["visitor_id"] = keys[row.pop("uid")]
                rows.append(row)
            await event_store.insert_pageviews(session, rows)
            progress.update(task, advance=len(chunk))
        progress.update(task, description="Goal completions")
        for goal in traffic.goals:
            await store_completion(
                session,
                site_id=site.id,
                name=goal.name,
                uid=goal.uid,
                url=goal.url,
                metadata=goal.metadata,
                at=goal.at,
            )
            progress.update(task, advance=1)
        progress.update(task, description="Payments")
        for event in traffic.payments:
            await record_payment(session, site=site, payment=event.payment, now=now)
            progress.update(task, advance=1)
        progress.update(task, description="Done")
    return DemoSummary(
        site_id=site.id,
        visitors=len(traffic.visitors),
        pageviews=len(traffic.pageviews),
        goal_completions=len(traffic.goals),
        payments=len(traffic.payments),
        refunds=sum(1 for p in traffic.payments if p.payment.payment_type == "refund"),
    )


def _report(console: Console, summary: DemoSummary, days: int) -> None:
    console.print(
        f"Demo data for [bold]{summary.site_id}[/bold] over {days} days: "
        f"{summary.visitors} visitors, {summary.pageviews} pageviews, "
        f"{summary.goal_completions} goal completions, {summary.payments} payments "
        f"({summary.refunds} refunds)"
    )


async def generate(
    database: Database,
    *,
    site_id: str,
    visitors: int,
    days: int,
    seed: int,
    console: Console,
    now: datetime | None = None,
) -> DemoSummary:
    """Write ``visitors`` visitors of realistic traffic over the ``days`` days ending ``now``.

    Creates the site (domain ``demo.example.com``) when it does not exist.
    """
    at = _minute(now or datetime.now(UTC))
    async with database.write() as session:
        site = await site_store.get_site(session, site_id)
        created = site is None
        if site is None:
            site = await site_resolvers.create_site(
                session, name="Demo", domain=DEMO_DOMAIN, site_id=site_id
            )
        summary = await _fill(
            session, site=site, visitors=visitors, days=days, seed=seed, now=at, console=console
        )
    _report(console, summary, days)
    if created:
        console.print(
            f"Created site [bold]{site_id}[/bold] ({DEMO_DOMAIN}); make a key with "
            f"`datasaas keys create --site {site_id} --scope read_write`"
        )
    return summary


async def ensure_demo(
    database: Database,
    *,
    console: Console,
    now: datetime | None = None,
    dashboard_url: str | None = None,
) -> bool:
    """Create the demo site with two keys and a month of traffic when the database holds no site.

    With ``dashboard_url``, also prints the dashboard's link opening with the read key.
    """
    at = _minute(now or datetime.now(UTC))
    async with database.write() as session:
        if await site_store.has_sites(session):
            return False
        site = await site_resolvers.create_site(
            session, name="Demo", domain=DEMO_DOMAIN, site_id=DEMO_SITE_ID
        )
        read = await site_resolvers.create_key(
            session, site_id=DEMO_SITE_ID, scope=Scope.READ, name="demo read"
        )
        write = await site_resolvers.create_key(
            session, site_id=DEMO_SITE_ID, scope=Scope.READ_WRITE, name="demo read & write"
        )
        summary = await _fill(
            session,
            site=site,
            visitors=DEFAULT_VISITORS,
            days=DEFAULT_DAYS,
            seed=DEFAULT_SEED,
            now=at,
            console=console,
        )
    console.print(f"Created demo site [bold]{DEMO_SITE_ID}[/bold] ({DEMO_DOMAIN})")
    _report(console, summary, DEFAULT_DAYS)
    console.print(f"  read key:         [bold green]{read.secret}[/bold green]")
    console.print(f"  read & write key: [bold green]{write.secret}[/bold green]")
    if dashboard_url:
        # One unbroken line, whatever the terminal's width: it is meant to be clicked or copied.
        console.print(f"  dashboard:        {dashboard_url}#key={read.secret}", soft_wrap=True)
    return True
