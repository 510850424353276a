"""Writing a planned demo traffic through the service layer, with a progress bar.

Visitors (first-touch attributes set directly: demo traffic has no real IP or User-Agent) and
pageviews are bulk-imported (``resolvers.imports``); goal completions and payments go through
the resolvers (``store_completions`` and ``record_payments``, set-based) like API writes.
Everything happens in the caller's transaction, so a run fills the site completely or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

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

from datasaas.billing import PaymentType
from datasaas.demo.planner import Traffic
from datasaas.errors import Conflict
from datasaas.resolvers import imports as import_resolvers
from datasaas.resolvers.goals import NewCompletion, store_completions
from datasaas.resolvers.payments import record_payments, validate_payment

if TYPE_CHECKING:
    from datasaas.storage.models import Site

__all__ = ["DemoSummary", "report", "write_traffic"]

# Pageviews per import call: the progress bar moves between calls.
_PAGEVIEW_STEP = 2000
# Goal completions per set-based write.
_GOAL_STEP = 1000
# Payments per set-based write (refunds among them are written one by one after the others).
_PAYMENT_STEP = 500


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run wrote."""

    site_id: str
    visitors: int
    pageviews: int
    goal_completions: int
    payments: int
    refunds: int


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def write_traffic(
    session: AsyncSession,
    *,
    site: Site,
    traffic: Traffic,
    seed: int,
    now: datetime,
    console: Console,
) -> DemoSummary:
    """Write ``traffic`` (planned from ``seed``) for ``site``; Conflict when that seed ran there."""
    uids = [row["uid"] for row in traffic.visitors]
    if await import_resolvers.existing_uids(session, site_id=site.id, uids=uids):
        raise Conflict(
            f"Site '{site.id}' already holds the demo data of seed {seed}; pass another --seed."
        )
    total = len(traffic.visitors) + len(traffic.pageviews)
    total += len(traffic.goals) + len(traffic.payments)
    with _progress(console) as progress:
        task = progress.add_task("Visitors", total=total)
        keys = await import_resolvers.import_visitors(
            session, site_id=site.id, visitors=traffic.visitors
        )
        progress.update(task, advance=len(traffic.visitors), description="Pageviews")
        for start in range(0, len(traffic.pageviews), _PAGEVIEW_STEP):
            chunk = traffic.pageviews[start : start + _PAGEVIEW_STEP]
            await import_resolvers.import_pageviews(
                session, site_id=site.id, pageviews=chunk, visitor_keys=keys
            )
            progress.update(task, advance=len(chunk))
        progress.update(task, description="Goal completions")
        for start in range(0, len(traffic.goals), _GOAL_STEP):
            goals = traffic.goals[start : start + _GOAL_STEP]
            await store_completions(
                session,
                [
                    NewCompletion(site.id, goal.name, goal.uid, goal.url, goal.metadata, goal.at)
                    for goal in goals
                ],
            )
            progress.update(task, advance=len(goals))
        progress.update(task, description="Payments")
        for start in range(0, len(traffic.payments), _PAYMENT_STEP):
            events = traffic.payments[start : start + _PAYMENT_STEP]
            await record_payments(
                session,
                [validate_payment(site.id, event.payment, now=now) for event in events],
            )
            progress.update(task, advance=len(events))
        progress.update(task, description="Done")
    return DemoSummary(
        site_id=site.id,
        visitors=len(traffic.visitors),
        pageviews=len(traffic.pageviews),
        goal_completions=len(traffic.goals),
        payments=len(traffic.payments),
        refunds=sum(1 for p in traffic.payments if p.payment.payment_type == PaymentType.REFUND),
    )


def report(console: Console, summary: DemoSummary, days: int) -> None:
    """Print one line saying what a run wrote."""
    console.print(
        f"Demo data for [bold]{summary.site_id}[/bold] over {days} days: "
        f"{summary.visitors} visitors, {summary.pageviews} pageviews, "
        f"{summary.goal_completions} goal completions, {summary.payments} payments "
        f"({summary.refunds} refunds)"
    )
