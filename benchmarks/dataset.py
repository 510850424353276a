"""The benchmark dataset: a deterministic generator and bulk loaders for SQLite and PostgreSQL.

One site, ``ds_bench``, with ``visitors`` visitors and ``visitors * pageviews_per_visitor``
pageviews spread over ``days`` days ending at a fixed instant, so every run sees the same data:

* visitors arrive with a daily and weekly rhythm; most come for one session, some return days
  later; pageviews of a session are 10-120 s apart (about 1.4-1.5 activity slots per visitor);
* ten goals with a funnel (30 % sign up, 8 % purchase after signing up, trials, upgrades, ...)
  and some repeated completions, about 1.15 completions per visitor;
* payments of purchasers in USD: one-time, monthly renewals, and refunds naming the original
  (about 5 % of the visitor count);
* ``visitor_slot`` rows for every 15-minute slot with a pageview, completion or payment.

The schema comes from the project's migrations; rows are then loaded in bulk, bypassing the ORM:
SQLite through the stdlib ``sqlite3`` module (``executemany`` in large transactions, rows in
index order) into a file cached under ``.bench/`` by parameters; PostgreSQL through asyncpg
``COPY`` into a dedicated database, secondary indexes dropped during the load and recreated from
their stored definitions.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory
from dateutil.relativedelta import relativedelta
from sqlalchemy.engine import make_url

from datasaas.periods import SLOT_SECONDS
from datasaas.resolvers.imports import build_derived
from datasaas.resolvers.sites import create_site
from datasaas.storage.engine import Database
from datasaas.storage.migrate import alembic_config, upgrade

SITE_ID = "ds_bench"
SITE_DOMAIN = "bench.example.com"
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
GENERATOR_VERSION = 3
"""Bump when the generated data changes, so cached databases are rebuilt."""

MAX_VISITORS = (1 << 24) - 1
MAX_PAGEVIEWS_PER_VISITOR = 200

_US = 1_000_000
_DAY_US = 86_400 * _US
_HOUR_US = 3_600 * _US
_SLOT_US = SLOT_SECONDS * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORIGIN = f"https://{SITE_DOMAIN}"
_CHUNK_ROWS = 100_000

Log = Callable[[str], None]
Formatter = Callable[[int], Any]

GOALS: tuple[str, ...] = (
    "signup",
    "purchase",
    "start_trial",
    "upgrade_plan",
    "invite_teammate",
    "view_pricing",
    "add_to_cart",
    "newsletter_subscribe",
    "download_whitepaper",
    "contact_sales",
)
_GOAL_ID = {name: index + 1 for index, name in enumerate(GOALS)}
_GOAL_PATH = {
    "signup": "/signup/done",
    "purchase": "/checkout/success",
    "start_trial": "/app/trial",
    "upgrade_plan": "/app/billing",
    "invite_teammate": "/app/team",
    "view_pricing": "/pricing",
    "add_to_cart": "/checkout",
    "newsletter_subscribe": "/blog",
    "download_whitepaper": "/resources/whitepaper",
    "contact_sales": "/contact",
}
# Goals done independently of the funnel: (name, probability, probability of each repeat).
_INDEPENDENT_GOALS = (
    ("view_pricing", 0.20, 0.35),
    ("add_to_cart", 0.12, 0.30),
    ("newsletter_subscribe", 0.08, 0.0),
    ("download_whitepaper", 0.04, 0.0),
    ("contact_sales", 0.02, 0.0),
)
_ONE_TIME_PRODUCTS = (("Starter pack", 1900), ("Pro license", 4900), ("Team license", 9900))
_PLANS = (("Basic monthly", 900), ("Pro monthly", 2900), ("Business monthly", 9900))

# (source, referrer, utm_source, utm_medium, utm_campaign), weight
_SOURCES: tuple[tuple[tuple[str | None, ...], int], ...] = (
    ((None, None, None, None, None), 35),
    (("google.com", "https://www.google.com/", None, None, None), 24),
    (("bing.com", "https://www.bing.com/", None, None, None), 3),
    (("duckduckgo.com", "https://duckduckgo.com/", None, None, None), 3),
    (
        ("news.ycombinator.com", "https://news.ycombinator.com/item?id=41234567", None, None, None),
        6,
    ),
    (("reddit.com", "https://www.reddit.com/r/SaaS/", None, None, None), 5),
    (("x.com", "https://x.com/", None, None, None), 5),
    (("linkedin.com", "https://www.linkedin.com/feed/", None, None, None), 4),
    (("github.com", "https://github.com/", None, None, None), 4),
    (("producthunt.com", "https://www.producthunt.com/", None, None, None), 3),
    (("newsletter", None, "newsletter", "email", "autumn_launch"), 4),
    (("facebook.com", "https://www.facebook.com/", None, None, None), 2),
    (("chatgpt.com", "https://chatgpt.com/", None, None, None), 2),
)
_GEO: tuple[tuple[tuple[str | None, str | None], int], ...] = (
    (("United States", "New York"), 12),
    (("United States", "San Francisco"), 8),
    (("United States", "Austin"), 5),
    (("Germany", "Berlin"), 7),
    (("United Kingdom", "London"), 8),
    (("France", "Paris"), 6),
    (("India", "Bengaluru"), 8),
    (("Canada", "Toronto"), 5),
    (("Brazil", "São Paulo"), 5),
    (("Japan", "Tokyo"), 4),
    (("Netherlands", "Amsterdam"), 4),
    (("Australia", "Sydney"), 3),
    (("Spain", "Madrid"), 3),
    (("Poland", "Warsaw"), 3),
    (("Germany", None), 2),
    ((None, None), 3),
)
_DEVICES: tuple[tuple[tuple[str, str, str], int], ...] = (
    (("Chrome", "Windows", "desktop"), 25),
    (("Chrome", "macOS", "desktop"), 15),
    (("Safari", "macOS", "desktop"), 8),
    (("Safari", "iOS", "mobile"), 15),
    (("Chrome", "Android", "mobile"), 14),
    (("Firefox", "Windows", "desktop"), 5),
    (("Firefox", "Linux", "desktop"), 3),
    (("Edge", "Windows", "desktop"), 7),
    (("Safari", "iOS", "tablet"), 3),
    (("Chrome", "ChromeOS", "desktop"), 2),
    (("Chrome", "Linux", "desktop"), 2),
    (("Opera", "Windows", "desktop"), 1),
)
_PAGES: tuple[tuple[str, str, int], ...] = (
    ("/", "Home", 30),
    ("/pricing", "Pricing", 12),
    ("/features", "Features", 10),
    ("/blog", "Blog", 8),
    ("/blog/exact-unique-counts", "Exact unique counts, fast", 5),
    ("/blog/revenue-attribution", "Revenue attribution", 4),
    ("/docs", "Docs", 8),
    ("/docs/api", "API reference", 6),
    ("/docs/quickstart", "Quickstart", 5),
    ("/signup", "Sign up", 5),
    ("/login", "Log in", 4),
    ("/about", "About", 2),
    ("/changelog", "Changelog", 2),
    ("/contact", "Contact", 1),
    ("/checkout", "Checkout", 2),
)
# Sessions per visitor: 1, 2, 3 or 4, cumulative weights.
_SESSION_CUM = (0.88, 0.97, 0.995, 1.0)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "goal": ("id", "site_id", "name", "created_at"),
    "visitor": (
        "id",
        "site_id",
        "uid",
        "first_seen_at",
        "first_pageview_at",
        "landing_url",
        "referrer",
        "source",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "country",
        "city",
        "browser",
        "os",
        "device_type",
    ),
    "pageview": (
        "site_id",
        "visitor_id",
        "session_id",
        "occurred_at",
        "url",
        "hostname",
        "pathname",
        "referrer",
        "title",
    ),
    "goal_completion": ("site_id", "goal_id", "visitor_id", "completed_at", "url", "metadata"),
    "payment": (
        "site_id",
        "visitor_id",
        "transaction_id",
        "payment_type",
        "amount_minor",
        "currency",
        "reporting_amount_minor",
        "reporting_currency",
        "fx_rate",
        "fx_rate_date",
        "product_name",
        "original_transaction_id",
        "paid_at",
        "created_at",
        "billing_interval",
        "billing_interval_count",
        "covers_until_at",
        "provider",
    ),
    "visitor_slot": ("site_id", "slot", "visitor_id"),
}
"""Loaded tables in load order, with the columns the loaders fill."""


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """What to generate; equal specs generate identical data."""

    visitors: int = 1_000_000
    pageviews_per_visitor: int = 5
    days: int = 90
    end: datetime = DEFAULT_END
    seed: int = 20261101

    def __post_init__(self) -> None:
        if not 1 <= self.visitors <= MAX_VISITORS:
            raise ValueError(f"visitors must be from 1 to {MAX_VISITORS}")
        if not 1 <= self.pageviews_per_visitor <= MAX_PAGEVIEWS_PER_VISITOR:
            raise ValueError(f"pageviews per visitor must be from 1 to {MAX_PAGEVIEWS_PER_VISITOR}")
        if self.days < 30:
            raise ValueError("days must be at least 30 (the benchmark reads the last 30 days)")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")

    @property
    def start(self) -> datetime:
        """The first instant of the generated window."""
        return self.end - timedelta(days=self.days)

    @property
    def pageviews(self) -> int:
        """The exact number of pageviews generated."""
        return self.visitors * self.pageviews_per_visitor

    def last_days(self, days: int = 30) -> tuple[date, date]:
        """The first and last UTC date of the last ``days`` whole days before ``end``."""
        last = (self.end - timedelta(microseconds=1)).astimezone(UTC).date()
        return last - timedelta(days=days - 1), last

    def cache_key(self) -> str:
        """A file-name-safe key of the spec, the generator version and the schema revision."""
        return (
            f"{SITE_ID}-v{self.visitors}-k{self.pageviews_per_visitor}-d{self.days}"
            f"-e{self.end.astimezone(UTC):%Y%m%dT%H%M%S}-s{self.seed}"
            f"-g{GENERATOR_VERSION}-r{schema_revision()}"
        )


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Where a dataset lives and what building it cost (``None`` seconds: reused from cache)."""

    database_url: str
    spec: DatasetSpec
    cached: bool
    seconds: float | None
    rows: dict[str, int]
    phases: dict[str, float] = field(default_factory=dict)


def schema_revision() -> str:
    """The head revision of the project's migrations (part of every cache key)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head or "none"


def _weighted(rng: random.Random, items: Sequence[tuple[Any, int]]) -> Callable[[], Any]:
    values = [item for item, _ in items]
    cumulative: list[float] = []
    total = 0.0
    for _, weight in items:
        total += weight
        cumulative.append(total)
    choices = rng.choices

    def pick() -> Any:
        return choices(values, cum_weights=cumulative)[0]

    return pick


def _page_index(visitor: int, session: int, page: int) -> int:
    """A cheap deterministic hash into the weighted page table (1,024 entries)."""
    return (visitor * 40_503 + session * 9_973 + page * 7_919) & 1023


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _metadata(goal: str, visitor: int) -> str | None:
    if goal == "signup":
        return _json({"method": ("email", "google", "github")[visitor % 3]})
    if goal == "purchase":
        return _json({"product": _ONE_TIME_PRODUCTS[visitor % 3][0], "coupon": visitor % 7 == 0})
    if goal == "start_trial":
        return _json({"plan": _PLANS[visitor % 3][0]})
    return None


@dataclass(slots=True)
class GeneratedData:
    """Generated rows in compact form: timestamps are integer microseconds since the epoch."""

    spec: DatasetSpec
    # (id, uid, first_us, landing_url, referrer, source, utm_source, utm_medium, utm_campaign,
    #  country, city, browser, os, device_type)
    visitors: list[tuple[Any, ...]]
    # (offset_us << 40) | (visitor << 16) | (session << 8) | page, sorted (= time order)
    pageview_keys: list[int]
    # (offset_us << 40) | (visitor << 16) | (goal_id << 8), sorted
    completion_keys: list[int]
    # (paid_us, visitor, transaction_id, type, amount_minor, product, original_transaction_id)
    payments: list[tuple[Any, ...]]
    # (slot << 24) | visitor, sorted (= primary key order)
    slot_keys: list[int]
    page_table: list[tuple[str, str]]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {
            "goal": len(GOALS),
            "visitor": len(self.visitors),
            "pageview": len(self.pageview_keys),
            "goal_completion": len(self.completion_keys),
            "payment": len(self.payments),
            "visitor_slot": len(self.slot_keys),
        }

    def rows(self, table: str, fmt: Formatter) -> Iterator[tuple[Any, ...]]:
        """The rows of ``table`` in TABLE_COLUMNS order, timestamps rendered by ``fmt``."""
        start_us = _micros(self.spec.start)
        if table == "goal":
            created = fmt(start_us)
            yield from ((index + 1, SITE_ID, name, created) for index, name in enumerate(GOALS))
        elif table == "visitor":
            for vid, uid, first_us, *rest in self.visitors:
                first = fmt(first_us)
                yield (vid, SITE_ID, uid, first, first, *rest)
        elif table == "pageview":
            pages = self.page_table
            referrers = {row[0]: row[4] for row in self.visitors} if self.visitors else {}
            for key in self.pageview_keys:
                offset, vid = key >> 40, (key >> 16) & 0xFFFFFF
                session, page = (key >> 8) & 0xFF, key & 0xFF
                path, title = pages[_page_index(vid, session, page)]
                referrer = referrers[vid] if session == 0 and page == 0 else None
                yield (
                    SITE_ID,
                    vid,
                    f"s{vid:x}.{session}",
                    fmt(start_us + offset),
                    _ORIGIN + path,
                    SITE_DOMAIN,
                    path,
                    referrer,
                    title,
                )
        elif table == "goal_completion":
            for key in self.completion_keys:
                offset, vid, goal = key >> 40, (key >> 16) & 0xFFFFFF, (key >> 8) & 0xFF
                name = GOALS[goal - 1]
                yield (
                    SITE_ID,
                    goal,
                    vid,
                    fmt(start_us + offset),
                    _ORIGIN + _GOAL_PATH[name],
                    _metadata(name, vid),
                )
        elif table == "payment":
            for paid_us, vid, txn, kind, amount, product, original in self.payments:
                paid = fmt(paid_us)
                monthly = kind == "recurring"
                until = (
                    fmt(_micros(_EPOCH + timedelta(microseconds=paid_us) + relativedelta(months=1)))
                    if monthly
                    else None
                )
                yield (
                    SITE_ID,
                    vid,
                    txn,
                    kind,
                    amount,
                    "USD",
                    amount,
                    "USD",
                    "1",
                    None,
                    product,
                    original,
                    paid,
                    paid,
                    "month" if monthly else None,
                    1 if monthly else None,
                    until,
                    "api",
                )
        elif table == "visitor_slot":
            yield from ((SITE_ID, key >> 24, key & 0xFFFFFF) for key in self.slot_keys)
        else:
            raise KeyError(table)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _pageview_counts(rng: random.Random, visitors: int, per_visitor: int) -> list[int]:
    """Pageviews per visitor: 1 + a rounded exponential, adjusted to sum to exactly N * K."""
    if per_visitor == 1:
        return [1] * visitors
    cap = MAX_PAGEVIEWS_PER_VISITOR
    rate = 1 / (per_visitor - 1)
    counts = [min(cap, 1 + int(rng.expovariate(rate) + 0.5)) for _ in range(visitors)]
    diff = visitors * per_visitor - sum(counts)
    while diff:
        index = rng.randrange(visitors)
        if diff > 0 and counts[index] < cap:
            counts[index] += 1
            diff -= 1
        elif diff < 0 and counts[index] > 1:
            counts[index] -= 1
            diff += 1
    return counts


def _arrival_offsets(rng: random.Random, spec: DatasetSpec) -> list[int]:
    """First-visit offsets (µs from the window start), sorted: busier afternoons and weekdays."""
    hour_weight = [0.35, 0.3, 0.3, 0.3, 0.35, 0.45, 0.6, 0.8, 1.0, 1.15, 1.25, 1.3]
    hour_weight += [1.35, 1.4, 1.45, 1.5, 1.5, 1.45, 1.35, 1.2, 1.0, 0.8, 0.6, 0.45]
    start_weekday = spec.start.astimezone(UTC).weekday()
    cumulative: list[float] = []
    total = 0.0
    for hour in range(spec.days * 24):
        weekday = (start_weekday + hour // 24) % 7
        total += hour_weight[hour % 24] * (0.7 if weekday >= 5 else 1.0)
        cumulative.append(total)
    hours = rng.choices(range(spec.days * 24), cum_weights=cumulative, k=spec.visitors)
    offsets = [hour * _HOUR_US + rng.randrange(_HOUR_US) for hour in hours]
    offsets.sort()
    return offsets


def generate(spec: DatasetSpec) -> GeneratedData:
    """Generate the dataset of ``spec`` (deterministic for a given spec)."""
    rng = random.Random(spec.seed)
    start_us, end_us = _micros(spec.start), _micros(spec.end)
    page_table = [
        (path, title)
        for path, title in rng.choices(
            [(path, title) for path, title, _ in _PAGES],
            weights=[weight for *_, weight in _PAGES],
            k=1024,
        )
    ]
    pick_source = _weighted(rng, _SOURCES)
    pick_geo = _weighted(rng, _GEO)
    pick_device = _weighted(rng, _DEVICES)
    counts = _pageview_counts(rng, spec.visitors, spec.pageviews_per_visitor)
    arrivals = _arrival_offsets(rng, spec)

    visitors: list[tuple[Any, ...]] = []
    pageview_keys: list[int] = []
    completion_keys: list[int] = []
    payments: list[tuple[Any, ...]] = []
    slot_keys: list[int] = []
    random_ = rng.random
    randrange = rng.randrange
    session_gap_rate = 1 / (3 * _DAY_US)
    last_instant = end_us - 1

    for index, arrival in enumerate(arrivals):
        vid = index + 1
        count = counts[index]
        sessions = 1
        draw = random_()
        while draw > _SESSION_CUM[sessions - 1]:
            sessions += 1
        sessions = min(sessions, count)
        if sessions == 1:
            sizes = [count]
        else:
            cuts = sorted(rng.sample(range(1, count), sessions - 1))
            sizes = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]

        # (time, session, page) of each pageview; a return visit that would start in the last
        # hour continues the previous session instead, so every event stays before ``end``.
        views: list[tuple[int, int, int]] = []
        at = start_us + arrival
        session = 0
        page = 0
        for number, size in enumerate(sizes):
            if number:
                gap = 30 * 60 * _US + int(rng.expovariate(session_gap_rate))
                if at + gap < end_us - _HOUR_US:
                    at += gap
                    session += 1
                    page = 0
                else:
                    at += randrange(10 * _US, 120 * _US)
            for step in range(size):
                if step:
                    at += randrange(10 * _US, 120 * _US)
                views.append((at, session, page))
                page += 1
        overflow = views[-1][0] - last_instant
        if overflow > 0:
            shift = overflow + randrange(_US, 600 * _US)
            views = [(max(start_us, t - shift), s, p) for t, s, p in views]
        times = [t for t, _, _ in views]
        slots = {t // _SLOT_US for t in times}
        for t, s, p in views:
            pageview_keys.append(((t - start_us) << 40) | (vid << 16) | (s << 8) | p)

        done: list[tuple[int, int]] = []
        mine: list[tuple[Any, ...]] = []
        if random_() < 0.30:
            signup_index, signup_at = _near_view(rng, times, 0, last_instant)
            done.append((signup_at, _GOAL_ID["signup"]))
            if random_() < 0.08 / 0.30:
                when = _near_view(rng, times, signup_index, last_instant)[1]
                purchase_at = min(
                    max(when, signup_at + randrange(5 * _US, 120 * _US)), last_instant
                )
                done.append((purchase_at, _GOAL_ID["purchase"]))
                mine = _payments(rng, vid, purchase_at, end_us)
            if random_() < 1 / 3:
                when = _near_view(rng, times, signup_index, last_instant)[1]
                trial_at = min(max(when, signup_at + randrange(5 * _US, 300 * _US)), last_instant)
                done.append((trial_at, _GOAL_ID["start_trial"]))
                if random_() < 0.2:
                    upgrade_at = min(trial_at + randrange(60 * _US, 600 * _US), last_instant)
                    done.append((upgrade_at, _GOAL_ID["upgrade_plan"]))
            if random_() < 0.1:
                when = _near_view(rng, times, signup_index, last_instant)[1]
                done.append((max(when, signup_at), _GOAL_ID["invite_teammate"]))
        for name, probability, repeat in _INDEPENDENT_GOALS:
            if random_() < probability:
                done.append((_near_view(rng, times, 0, last_instant)[1], _GOAL_ID[name]))
                while random_() < repeat:
                    done.append((_near_view(rng, times, 0, last_instant)[1], _GOAL_ID[name]))
        for when, goal in done:
            completion_keys.append(((when - start_us) << 40) | (vid << 16) | (goal << 8))
            slots.add(when // _SLOT_US)
        payments.extend(mine)
        slots.update(row[0] // _SLOT_US for row in mine)
        slot_keys.extend((slot << 24) | vid for slot in slots)

        source, referrer, utm_source, utm_medium, utm_campaign = pick_source()
        country, city = pick_geo()
        browser, os_name, device = pick_device()
        landing = _ORIGIN + page_table[_page_index(vid, 0, 0)][0]
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        visitors.append(
            (
                vid,
                uid,
                times[0],
                landing,
                referrer,
                source,
                utm_source,
                utm_medium,
                utm_campaign,
                country,
                city,
                browser,
                os_name,
                device,
            )
        )

    pageview_keys.sort()
    completion_keys.sort()
    payments.sort(key=lambda row: (row[0], row[2]))
    slot_keys.sort()
    return GeneratedData(
        spec=spec,
        visitors=visitors,
        pageview_keys=pageview_keys,
        completion_keys=completion_keys,
        payments=payments,
        slot_keys=slot_keys,
        page_table=page_table,
    )


def _near_view(
    rng: random.Random, times: list[int], after: int, last_instant: int
) -> tuple[int, int]:
    """A random pageview at or after index ``after``: (its index, a moment 2-40 s after it)."""
    position = rng.randrange(after, len(times))
    return position, min(times[position] + rng.randrange(2 * _US, 40 * _US), last_instant)


def _payments(rng: random.Random, vid: int, purchase_us: int, end_us: int) -> list[tuple[Any, ...]]:
    """A purchaser's payments: a one-time payment, a monthly subscription, or nothing."""
    rows: list[tuple[Any, ...]] = []
    draw = rng.random()
    first = purchase_us + rng.randrange(_US, 30 * _US)
    if first >= end_us:
        return rows
    if draw < 0.38:
        product, amount = _ONE_TIME_PRODUCTS[rng.randrange(len(_ONE_TIME_PRODUCTS))]
        rows.append((first, vid, f"txn_{vid}_0", "one_time", amount, product, None))
    elif draw < 0.50:
        product, amount = _PLANS[rng.randrange(len(_PLANS))]
        first_at = _EPOCH + timedelta(microseconds=first)
        month = 0
        while True:
            paid = _micros(first_at + relativedelta(months=month))
            if paid >= end_us:
                break
            rows.append((paid, vid, f"txn_{vid}_{month}", "recurring", amount, product, None))
            month += 1
    refunds = []
    for paid, _, txn, _, amount, product, _ in rows:
        if rng.random() < 0.03:
            refunded_at = paid + rng.randrange(_HOUR_US, 14 * _DAY_US)
            if refunded_at < end_us:
                value = amount if rng.random() < 0.7 else amount // 2
                refunds.append((refunded_at, vid, f"rf_{txn}", "refund", value, product, txn))
    return rows + refunds


# --- SQLite ---------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path.resolve()}"


def sqlite_timestamp_formatter() -> Formatter:
    """Render µs since the epoch as the project's SQLite text (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    days: dict[int, str] = {}

    def fmt(micros: int) -> str:
        day, rest = divmod(micros, _DAY_US)
        prefix = days.get(day)
        if prefix is None:
            prefix = days[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        seconds, fraction = divmod(rest, _US)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        return f"{prefix} {hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:06d}"

    return fmt


async def _prepare_schema(url: str, spec: DatasetSpec) -> None:
    """Apply the project's migrations and create the benchmark site through its resolver."""
    database = Database(url)
    try:
        await upgrade(database)
        async with database.write() as session:
            await create_site(
                session,
                name="Benchmark",
                domain=SITE_DOMAIN,
                site_id=SITE_ID,
                currency="USD",
                now=spec.start,
            )
    finally:
        await database.dispose()


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_sqlite(path: Path, data: GeneratedData, *, log: Log) -> dict[str, float]:
    """Bulk-load generated rows into a migrated SQLite file; return seconds per phase.

    The migrations' indexes stay in place: rows arrive in index order (time-sorted), so keeping
    them costs about as much as dropping and recreating them (measured at 200k visitors:
    17.9 s with, 20.3 s without).
    """
    phases: dict[str, float] = {}
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")
        connection.execute("PRAGMA temp_store=MEMORY")
        fmt = sqlite_timestamp_formatter()
        for table, columns in TABLE_COLUMNS.items():
            began = time.perf_counter()
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            statement = f"INSERT INTO {table} ({names}) VALUES ({marks})"
            for chunk in _chunks(data.rows(table, fmt), _CHUNK_ROWS * 5):
                connection.execute("BEGIN")
                connection.executemany(statement, chunk)
                connection.execute("COMMIT")
            took = phases[f"load {table}"] = time.perf_counter() - began
            log(f"  loaded {table:<16} {data.counts()[table]:>10,} rows in {took:.1f} s")
        began = time.perf_counter()
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        phases["analyze"] = time.perf_counter() - began
    finally:
        connection.close()
    return phases


def build_sqlite(
    spec: DatasetSpec,
    cache_dir: Path,
    *,
    rebuild: bool = False,
    log: Log = print,
) -> BuildResult:
    """Return the cached SQLite database of ``spec``, generating and loading it when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{spec.cache_key()}.db"
    if path.exists() and not rebuild:
        log(f"Reusing cached dataset {path}")
        return BuildResult(sqlite_url(path), spec, True, None, _sqlite_counts(path))
    scratch = path.with_name(path.name + ".building")
    for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
        leftover.unlink(missing_ok=True)
    log(f"Generating {spec.visitors:,} visitors / {spec.pageviews:,} pageviews into {path}")
    began = time.perf_counter()
    asyncio.run(_prepare_schema(sqlite_url(scratch), spec))
    phases = {"migrate": time.perf_counter() - began}
    mark = time.perf_counter()
    data = generate(spec)
    phases["generate"] = time.perf_counter() - mark
    log(f"  generated rows in {phases['generate']:.1f} s: {data.counts()}")
    phases.update(load_sqlite(scratch, data, log=log))
    counts = data.counts()
    del data
    phases["derived caches"] = asyncio.run(_build_derived(sqlite_url(scratch), log))
    os.replace(scratch, path)
    seconds = time.perf_counter() - began
    log(f"Dataset built in {seconds:.1f} s")
    return BuildResult(sqlite_url(path), spec, False, seconds, counts, phases)


async def _build_derived(url: str, log: Log) -> float:
    """What the product's import does once its rows are in: build the cached bitmaps and
    revenue rollups of every finished day (``resolvers.imports.build_derived``); seconds."""
    began = time.perf_counter()
    database = Database(url)
    try:
        periods = await build_derived(database, site_id=SITE_ID)
    finally:
        await database.dispose()
    seconds = time.perf_counter() - began
    log(f"  built the derived caches of {periods} days and hours in {seconds:.1f} s (import)")
    return seconds


def _sqlite_counts(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in TABLE_COLUMNS
        }
    finally:
        connection.close()


# --- PostgreSQL -----------------------------------------------------------------------------


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    """A plain ``postgresql://`` DSN for asyncpg from a SQLAlchemy URL (optionally another db)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def postgres_url(admin_url: str, database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the server of ``admin_url``."""
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _pg_timestamp(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


async def _pg_comment(admin_url: str, database: str) -> str | None:
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        value = await connection.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            database,
        )
        return None if value is None else str(value)
    finally:
        await connection.close()


async def drop_postgres(admin_url: str, database: str) -> None:
    """Drop the benchmark database (connections are closed by force)."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await connection.close()


async def clone_postgres(admin_url: str, *, template: str, name: str) -> None:
    """(Re)create database ``name`` as a copy of ``template``."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await connection.close()


async def _load_postgres(url: str, data: GeneratedData, *, log: Log) -> dict[str, float]:
    phases: dict[str, float] = {}
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # Rows are consistent by construction: skip per-row foreign-key triggers during COPY.
        await connection.execute("SET session_replication_role = replica")
        indexes = await connection.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[]) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) "
            "ORDER BY i.indexname",
            list(TABLE_COLUMNS),
        )
        for row in indexes:
            await connection.execute(f'DROP INDEX "{row["indexname"]}"')
        for table, columns in TABLE_COLUMNS.items():
            began = time.perf_counter()
            for chunk in _chunks(data.rows(table, _pg_timestamp), _CHUNK_ROWS * 5):
                await connection.copy_records_to_table(table, records=chunk, columns=columns)
            took = phases[f"load {table}"] = time.perf_counter() - began
            log(f"  copied {table:<16} {data.counts()[table]:>10,} rows in {took:.1f} s")
        for table in ("visitor", "goal"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        began = time.perf_counter()
        await connection.execute("SET maintenance_work_mem = '512MB'")
        for row in indexes:
            await connection.execute(row["indexdef"])
        phases["create indexes"] = time.perf_counter() - began
        log(f"  recreated {len(indexes)} indexes in {phases['create indexes']:.1f} s")
        began = time.perf_counter()
        await connection.execute("VACUUM (ANALYZE)")
        phases["vacuum analyze"] = time.perf_counter() - began
    finally:
        await connection.close()
    return phases


async def _pg_counts(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {
            table: int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
            for table in TABLE_COLUMNS
        }
    finally:
        await connection.close()


async def build_postgres(
    spec: DatasetSpec,
    admin_url: str,
    database: str,
    *,
    rebuild: bool = False,
    log: Log = print,
) -> BuildResult:
    """(Re)create ``database`` with the dataset of ``spec``; reuse it when already built so."""
    url = postgres_url(admin_url, database)
    marker = f"datasaas-bench {spec.cache_key()}"
    if not rebuild and await _pg_comment(admin_url, database) == marker:
        log(f"Reusing PostgreSQL database {database} ({marker})")
        return BuildResult(url, spec, True, None, await _pg_counts(url))
    log(f"Generating {spec.visitors:,} visitors / {spec.pageviews:,} pageviews into {database}")
    began = time.perf_counter()
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    await _prepare_schema(url, spec)
    phases = {"migrate": time.perf_counter() - began}
    mark = time.perf_counter()
    data = await asyncio.to_thread(generate, spec)
    phases["generate"] = time.perf_counter() - mark
    log(f"  generated rows in {phases['generate']:.1f} s: {data.counts()}")
    phases.update(await _load_postgres(url, data, log=log))
    counts = data.counts()
    del data
    phases["derived caches"] = await _build_derived(url, log)
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f"COMMENT ON DATABASE \"{database}\" IS '{marker}'")
    finally:
        await admin.close()
    seconds = time.perf_counter() - began
    log(f"Dataset built in {seconds:.1f} s")
    return BuildResult(url, spec, False, seconds, counts, phases)
