"""Bulk imports: visitors whose first touch is already known, and their pageviews.

Generated or migrated traffic arrives as whole tables, not as tracker events: the first-touch
attributes are set directly (there is no IP or User-Agent to derive them from) and rows are
written in bounded statements. The demo generator writes its visitors and pageviews here; goal
completions and payments go through ``resolvers.goals`` and ``resolvers.payments`` like API writes.
Once the import's transaction committed, ``build_derived`` builds the cached bitmaps and revenue
rollups of its finished days, so no read pays for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.storage import imports as import_store
from datasaas.storage import pageviews as pageview_store
from datasaas.storage import warmup

if TYPE_CHECKING:
    from datasaas.storage.engine import Database


async def existing_uids(session: AsyncSession, *, site_id: str, uids: Sequence[str]) -> int:
    """Return how many of ``uids`` are already visitors of the site."""
    return await import_store.existing_uids(session, site_id=site_id, uids=uids)


async def import_visitors(
    session: AsyncSession, *, site_id: str, visitors: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Insert visitors with their first touch set; return each ``uid``'s visitor key.

    Each visitor holds ``uid``, ``first_seen_at`` and any first-touch column of ``visitor``.
    Visitors that already exist are left untouched (their first touch stays first).
    """
    return await import_store.insert_visitors(
        session, site_id=site_id, rows=[dict(visitor) for visitor in visitors]
    )


async def import_pageviews(
    session: AsyncSession,
    *,
    site_id: str,
    pageviews: Sequence[Mapping[str, Any]],
    visitor_keys: Mapping[str, int],
) -> None:
    """Insert pageviews of imported visitors and mark those visitors active in their hours.

    Each pageview holds the ``pageview`` columns with ``uid`` in place of ``visitor_id``;
    ``visitor_keys`` (from ``import_visitors``) maps each ``uid`` to its visitor key.
    """
    rows = []
    for pageview in pageviews:
        row = dict(pageview, site_id=site_id)
        row["visitor_id"] = visitor_keys[row.pop("uid")]
        rows.append(row)
    await pageview_store.insert_pageviews(session, rows)


async def build_derived(database: Database, *, site_id: str) -> int:
    """After an import committed: build the site's cached bitmaps and revenue rollups of every
    finished day and hour (so no request pays seconds for them); the periods built."""
    return await warmup.warm_site(database, site_id=site_id)
