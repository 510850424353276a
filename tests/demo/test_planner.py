"""The pure demo planner: deterministic per seed, as many visitors as asked, inside the window."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from datasaas.demo.data import DEVICES, PLANS
from datasaas.demo.planner import Traffic, plan_traffic
from datasaas.money import format_major

NOW = datetime(2026, 11, 30, 12, 34, tzinfo=UTC)
DOMAIN = "shop.test"


def plan(*, visitors: int = 400, days: int = 30, seed: int = 1) -> Traffic:
    """The traffic of ``visitors`` visitors over ``days`` days before ``NOW``."""
    return plan_traffic(domain=DOMAIN, visitors=visitors, days=days, seed=seed, now=NOW)


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    assert plan(seed=5) == plan(seed=5)
    assert plan(seed=5).visitors != plan(seed=6).visitors


def test_a_seed_planned_again_later_repeats_its_first_visitor() -> None:
    # The writer refuses a seed already written to a site by finding one of its visitor ids.
    earlier = plan_traffic(domain=DOMAIN, visitors=50, days=30, seed=9, now=NOW - timedelta(days=3))
    later = plan_traffic(domain=DOMAIN, visitors=50, days=30, seed=9, now=NOW)
    assert earlier.visitors[0]["uid"] == later.visitors[0]["uid"]
    assert earlier.visitors[0]["uid"] != plan(visitors=1, seed=10).visitors[0]["uid"]


@pytest.mark.parametrize("visitors", [1, 7, 250])
def test_plans_exactly_the_visitors_asked_for_each_once(visitors: int) -> None:
    traffic = plan(visitors=visitors)
    uids = [v["uid"] for v in traffic.visitors]
    assert len(uids) == visitors
    assert len(set(uids)) == visitors


def test_every_pageview_lies_in_the_window_and_belongs_to_a_planned_visitor() -> None:
    days = 14
    traffic = plan(days=days)
    start = NOW - timedelta(days=days)
    uids = {v["uid"] for v in traffic.visitors}
    # Long-standing subscribers have history before the window; everyone else is inside it.
    in_window = [pv for pv in traffic.pageviews if pv["occurred_at"] >= start]
    assert len(in_window) >= 0.9 * len(traffic.pageviews)
    assert all(pv["occurred_at"] < NOW for pv in traffic.pageviews)
    assert all(pv["uid"] in uids for pv in traffic.pageviews)
    assert all(pv["hostname"] == DOMAIN for pv in traffic.pageviews)
    assert all(pv["url"].startswith(f"https://{DOMAIN}/") for pv in traffic.pageviews)
    assert all(pv["url"].split("?", 1)[0].endswith(pv["pathname"]) for pv in traffic.pageviews)


def test_a_first_touch_starts_each_visitors_first_session() -> None:
    traffic = plan()
    first_pageview: dict[str, datetime] = {}
    for pv in traffic.pageviews:
        at = first_pageview.get(pv["uid"])
        first_pageview[pv["uid"]] = pv["occurred_at"] if at is None else min(at, pv["occurred_at"])
    for visitor in traffic.visitors:
        assert visitor["first_seen_at"] == visitor["first_pageview_at"]
        assert first_pageview[visitor["uid"]] == visitor["first_seen_at"]


def test_goals_and_payments_are_sorted_in_time_and_in_the_past() -> None:
    traffic = plan()
    goal_times = [goal.at for goal in traffic.goals]
    payment_times = [payment.at for payment in traffic.payments]
    assert goal_times == sorted(goal_times)
    assert payment_times == sorted(payment_times)
    assert all(at < NOW for at in goal_times + payment_times)
    assert {goal.name for goal in traffic.goals} == {"signup", "purchase", "newsletter_subscribe"}


def test_payments_are_priced_from_the_plans_and_refunds_name_an_earlier_charge() -> None:
    traffic = plan(visitors=1500, days=60)
    prices = {
        (plan.product, currency, format_major(minor, currency))
        for plan in PLANS
        for currency, minor in plan.prices.items()
    }
    charges = {event.payment.transaction_id: event for event in traffic.payments}
    kinds = Counter(str(event.payment.payment_type) for event in traffic.payments)
    assert {"one_time", "recurring", "refund"} <= set(kinds)
    for event in traffic.payments:
        payment = event.payment
        assert payment.paid_at == event.at.isoformat()
        if payment.payment_type != "refund":
            assert (payment.product_name, payment.currency, payment.amount) in prices
            continue
        original = charges[str(payment.original_transaction_id)]
        assert original.payment.payment_type != "refund"
        assert original.at < event.at
        assert original.payment.visitor_id == payment.visitor_id
        assert original.payment.currency == payment.currency


def test_visitors_use_only_the_devices_of_the_table() -> None:
    devices = {(d.browser, d.os, d.device_type) for d in DEVICES}
    traffic = plan()
    assert {(v["browser"], v["os"], v["device_type"]) for v in traffic.visitors} <= devices
