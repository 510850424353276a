"""Event payloads, real User-Agent strings and database peeks shared by the tracking tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from datasaas.storage.engine import Database
from datasaas.storage.models import GoalCompletion, Pageview, Visitor, VisitorSlot

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

LONDON = "81.2.69.142"
MILTON = "216.160.83.56"
LINKOPING = "89.160.20.112"


def event(**fields: Any) -> dict[str, Any]:
    """A valid pageview of ``ds_test`` on example.com; ``fields`` override or add (None drops)."""
    body: dict[str, Any] = {
        "website_id": "ds_test",
        "visitor_id": "v-1",
        "session_id": "s-1",
        "event_type": "pageview",
        "url": "https://example.com/",
        "hostname": "example.com",
        "pathname": "/",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def goal(name: str = "signup", **fields: Any) -> dict[str, Any]:
    """A valid goal event."""
    return event(event_type="goal", goal_name=name, **fields)


async def count(database: Database, table: Any) -> int:
    """Rows in a table."""
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def stored(database: Database) -> dict[str, int]:
    """Rows of every table the ingestion writes."""
    return {
        "visitors": await count(database, Visitor),
        "pageviews": await count(database, Pageview),
        "completions": await count(database, GoalCompletion),
        "slots": await count(database, VisitorSlot),
    }


async def visitor(database: Database, uid: str, site_id: str = "ds_test") -> Visitor:
    """A visitor by client id."""
    async with database.read() as session:
        found = await session.scalar(
            select(Visitor).where(Visitor.site_id == site_id, Visitor.uid == uid)
        )
    assert found is not None, f"visitor {uid} not stored"
    return found


async def pageviews(database: Database) -> list[Pageview]:
    """Every pageview in insertion order."""
    async with database.read() as session:
        return list((await session.scalars(select(Pageview).order_by(Pageview.id))).all())


async def stored_completions(database: Database) -> list[GoalCompletion]:
    """Every goal completion in insertion order."""
    async with database.read() as session:
        query = select(GoalCompletion).order_by(GoalCompletion.id)
        return list((await session.scalars(query)).all())
