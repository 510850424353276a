"""The demo site and its generated traffic: ``serve --demo`` and ``datasaas demo``.

``ensure_demo`` creates the site ``ds_demo`` with two keys on an empty database and fills it
with a month of traffic; ``generate`` fills any site (creating it when missing).

One job per module: ``data`` holds the tables (sources, pages, countries, devices, plans,
rates), ``planner`` draws a run's traffic in memory (pure, deterministic per seed and ``now``
truncated to the minute), ``writer`` stores it through the resolvers. The two entry points
below run in one transaction each and print their report; they read ``DEFAULT_*`` from this
package, so a caller (or a test) can change the defaults here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from datasaas.config import DEMO_SITE_ID
from datasaas.demo.data import DEFAULT_DAYS, DEFAULT_SEED, DEFAULT_VISITORS, DEMO_DOMAIN
from datasaas.demo.planner import Traffic, plan_traffic
from datasaas.demo.writer import DemoSummary, report, write_traffic
from datasaas.errors import InvalidInput
from datasaas.resolvers import imports as import_resolvers
from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.sites import Scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from datasaas.storage.engine import Database
    from datasaas.storage.models import Site

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DEFAULT_VISITORS",
    "DEMO_DOMAIN",
    "DEMO_SITE_ID",
    "DemoSummary",
    "Traffic",
    "ensure_demo",
    "generate",
    "plan_traffic",
]


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


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
    return await write_traffic(
        session, site=site, traffic=traffic, seed=seed, now=now, console=console
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
        site = await site_resolvers.find_site(session, site_id)
        created = site is None
        if site is None:
            site = await site_resolvers.create_site(
                session, name="Demo", domain=DEMO_DOMAIN, site_id=site_id
            )
        summary = await _fill(
            session, site=site, visitors=visitors, days=days, seed=seed, now=at, console=console
        )
    await import_resolvers.build_derived(database, site_id=site_id)
    report(console, summary, days)
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
        if await site_resolvers.has_sites(session):
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
    await import_resolvers.build_derived(database, site_id=DEMO_SITE_ID)
    console.print(f"Created demo site [bold]{DEMO_SITE_ID}[/bold] ({DEMO_DOMAIN})")
    report(console, summary, DEFAULT_DAYS)
    console.print(f"  read key:         [bold green]{read.secret}[/bold green]")
    console.print(f"  read & write key: [bold green]{write.secret}[/bold green]")
    if dashboard_url:
        # One unbroken line, whatever the terminal's width: it is meant to be clicked or copied.
        console.print(f"  dashboard:        {dashboard_url}#key={read.secret}", soft_wrap=True)
    return True
