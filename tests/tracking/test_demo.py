"""The demo traffic generator: deterministic per seed, and believable enough to explore."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from datasaas import demo
from datasaas.errors import Conflict
from datasaas.storage.engine import Database
from datasaas.storage.models import (
    ApiKey,
    Goal,
    GoalCompletion,
    Pageview,
    Payment,
    Site,
    Visitor,
    VisitorSlot,
)
from tests.factories import make_site

NOW = datetime(2026, 11, 30, 12, 34, tzinfo=UTC)


def quiet(buffer: io.StringIO | None = None) -> Console:
    """A console writing into ``buffer`` (or nowhere visible)."""
    return Console(file=buffer or io.StringIO(), width=120)


async def snapshot(database: Database, site_id: str) -> dict[str, Any]:
    """Everything the demo wrote for a site, without surrogate keys."""
    async with database.read() as session:

        async def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in (await session.execute(query)).all())

        return {
            "visitors": await rows(
                select(
                    Visitor.uid, Visitor.first_seen_at, Visitor.first_pageview_at,
                    Visitor.landing_url, Visitor.referrer, Visitor.source, Visitor.utm_source,
                    Visitor.country, Visitor.city, Visitor.browser, Visitor.os,
                    Visitor.device_type,
                ).where(Visitor.site_id == site_id)
            ),
            "pageviews": await rows(
                select(
                    Visitor.uid, Pageview.session_id, Pageview.occurred_at, Pageview.url,
                    Pageview.referrer, Pageview.title,
                )
                .join(Visitor, Visitor.id == Pageview.visitor_id)
                .where(Pageview.site_id == site_id)
            ),
            "completions": await rows(
                select(Goal.name, Visitor.uid, GoalCompletion.completed_at, GoalCompletion.url)
                .join(Goal, Goal.id == GoalCompletion.goal_id)
                .join(Visitor, Visitor.id == GoalCompletion.visitor_id)
                .where(GoalCompletion.site_id == site_id)
            ),
            "payments": await rows(
                select(
                    Payment.transaction_id, Payment.payment_type, Payment.amount_minor,
                    Payment.currency, Payment.reporting_amount_minor, Payment.paid_at,
                    Payment.original_transaction_id, Visitor.uid,
                )
                .join(Visitor, Visitor.id == Payment.visitor_id)
                .where(Payment.site_id == site_id)
            ),
            "slots": len(
                await rows(select(VisitorSlot.slot).where(VisitorSlot.site_id == site_id))
            ),
        }  # fmt: skip


async def test_same_seed_same_data_other_seed_other_data(database: Database) -> None:
    runs = {}
    for site_id, seed in (("ds_a", 7), ("ds_b", 7), ("ds_c", 8)):
        summary = await demo.generate(
            database, site_id=site_id, visitors=80, days=40, seed=seed, console=quiet(), now=NOW
        )
        assert summary.visitors == 80
        runs[site_id] = await snapshot(database, site_id)
    assert runs["ds_a"] == runs["ds_b"]
    assert runs["ds_a"]["visitors"] != runs["ds_c"]["visitors"]


async def test_planning_is_deterministic_and_stays_in_the_past() -> None:
    first = demo.plan_traffic(domain="shop.test", visitors=300, days=30, seed=1, now=NOW)
    second = demo.plan_traffic(domain="shop.test", visitors=300, days=30, seed=1, now=NOW)
    assert first == second
    assert all(pv["occurred_at"] < NOW for pv in first.pageviews)
    assert all(g.at < NOW for g in first.goals)
    assert all(p.at < NOW for p in first.payments)
    start = NOW - timedelta(days=30)
    in_window = [v for v in first.visitors if v["first_seen_at"] >= start]
    assert len(in_window) >= 0.95 * len(first.visitors)
    assert all(pv["url"].startswith("https://shop.test/") for pv in first.pageviews)


async def test_demo_produces_visitors_goals_and_payments(database: Database) -> None:
    output = io.StringIO()
    console = quiet(output)
    summary = await demo.generate(
        database, site_id="ds_demo", visitors=600, days=45, seed=3, console=console, now=NOW
    )
    data = await snapshot(database, "ds_demo")
    assert len(data["visitors"]) == summary.visitors == 600
    assert len(data["pageviews"]) == summary.pageviews > 600
    assert len(data["completions"]) == summary.goal_completions
    assert len(data["payments"]) == summary.payments
    assert data["slots"] > 0

    goals = Counter(name for name, *_ in data["completions"])
    assert {"signup", "purchase", "newsletter_subscribe"} <= set(goals)
    assert goals["signup"] > goals["purchase"] > 0
    # Some visitors subscribe to more than one list: unique visitors < completions.
    subscribers = {row[1] for row in data["completions"] if row[0] == "newsletter_subscribe"}
    assert 0 < len(subscribers) < goals["newsletter_subscribe"]

    kinds = Counter(kind for _, kind, *_ in data["payments"])
    assert {"one_time", "recurring", "refund"} <= set(kinds)
    currencies = {payment[3] for payment in data["payments"]}
    assert {"USD", "EUR", "GBP"} <= currencies

    by_id = {payment[0]: payment for payment in data["payments"]}
    refunds = [p for p in data["payments"] if p[1] == "refund"]
    for refund in refunds:
        original = by_id[refund[6]]
        assert original[1] != "refund"
        assert (original[3], original[7]) == (refund[3], refund[7])  # currency, visitor
        assert original[5] < refund[5]

    sources = Counter(row[5] for row in data["visitors"])
    assert sources[None] > 0
    assert sources["google.com"] > 0
    assert sources["newsletter"] > 0
    devices = Counter(row[11] for row in data["visitors"])
    assert set(devices) == {"desktop", "mobile", "tablet"}
    countries = {row[7] for row in data["visitors"]}
    assert {"United States", "United Kingdom", "Japan"} <= countries

    async with database.read() as session:
        site = await session.get(Site, "ds_demo")
    assert site is not None
    assert site.domain == demo.DEMO_DOMAIN
    assert "600 visitors" in output.getvalue()


async def test_renewals_fall_a_calendar_month_apart(database: Database) -> None:
    await demo.generate(
        database, site_id="ds_demo", visitors=300, days=90, seed=11, console=quiet(), now=NOW
    )
    data = await snapshot(database, "ds_demo")
    recurring: dict[str, list[datetime]] = {}
    for payment in data["payments"]:
        if payment[1] == "recurring":
            recurring.setdefault(payment[7], []).append(payment[5])
    renewed = [sorted(times) for times in recurring.values() if len(times) > 1]
    assert renewed, "some subscribers renew within 90 days"
    for times in renewed:
        for earlier, later in itertools.pairwise(times):
            assert 28 <= (later - earlier).days <= 31


async def test_running_a_seed_twice_on_a_site_is_refused(database: Database) -> None:
    await make_site(database, site_id="ds_shop", domain="shop.example")
    await demo.generate(
        database, site_id="ds_shop", visitors=20, days=5, seed=5, console=quiet(), now=NOW
    )
    with pytest.raises(Conflict, match="another --seed"):
        await demo.generate(
            database, site_id="ds_shop", visitors=20, days=5, seed=5, console=quiet(), now=NOW
        )
    await demo.generate(
        database, site_id="ds_shop", visitors=20, days=5, seed=6, console=quiet(), now=NOW
    )
    data = await snapshot(database, "ds_shop")
    assert len(data["visitors"]) == 40
    assert all(row[3].startswith("https://shop.example/") for row in data["visitors"])


async def test_ensure_demo_creates_keys_and_a_month_of_data_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEFAULT_VISITORS", 150)
    buffer = io.StringIO()
    assert await demo.ensure_demo(database, console=quiet(buffer), now=NOW) is True
    output = buffer.getvalue()
    assert "ds_live_" in output
    assert "150 visitors" in output
    data = await snapshot(database, demo.DEMO_SITE_ID)
    assert len(data["visitors"]) == 150
    first_visits = [row[2] for row in data["visitors"]]
    assert max(first_visits) < NOW
    assert min(pv[2] for pv in data["pageviews"]) < NOW - timedelta(days=25)
    async with database.read() as session:
        scopes = sorted((await session.scalars(select(ApiKey.scope))).all())
    assert scopes == ["read", "read_write"]
    assert await demo.ensure_demo(database, console=quiet(), now=NOW) is False
