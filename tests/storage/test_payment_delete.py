"""Deleting a payment keeps ``visitor_slot`` exact, also against a concurrent event (§12)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers.payments import PaymentIn
from datasaas.resolvers.sites import require_site
from datasaas.storage import visitors as visitor_store
from datasaas.storage.engine import Database
from datasaas.storage.models import Pageview, VisitorSlot
from tests.factories import make_site

PAST = (datetime.now(UTC) - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)


async def _slots(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(VisitorSlot)) or 0)


async def _pay(database: Database, paid: datetime) -> None:
    async with database.write() as session:
        site = await require_site(session, "ds_test")
        await payment_resolvers.record_payment(
            session,
            site=site,
            payment=PaymentIn(
                visitor_id="v",
                amount="5.00",
                currency="USD",
                transaction_id="p",
                paid_at=paid.isoformat(),
            ),
        )


async def _delete(database: Database) -> None:
    async with database.write() as session:
        await payment_resolvers.delete_payment(session, site_id="ds_test", transaction_id="p")


async def test_delete_drops_the_slot_only_when_nothing_else_is_in_it(database: Database) -> None:
    await make_site(database)
    await _pay(database, PAST)
    assert await _slots(database) == 1
    await _delete(database)
    assert await _slots(database) == 0


async def test_an_event_committed_during_the_delete_keeps_its_slot(database: Database) -> None:
    # The current hour: no hour version is bumped there, so nothing else serialises the two.
    now = datetime.now(UTC)
    paid = max(now.replace(minute=0, second=0, microsecond=0), now - timedelta(seconds=30))
    await make_site(database)
    await _pay(database, paid)
    written = asyncio.Event()

    async def pageview_first() -> None:
        async with database.write() as session:
            key = await visitor_store.visitor_key(session, site_id="ds_test", uid="v", seen_at=paid)
            at = paid
            session.add(Pageview(site_id="ds_test", visitor_id=key, session_id="s", occurred_at=at))
            await session.flush()
            await visitor_store.mark_active(session, site_id="ds_test", visitor_id=key, at=at)
            written.set()
            await asyncio.sleep(0.5)  # the delete starts while this is still uncommitted

    async def delete_meanwhile() -> None:
        await written.wait()
        await _delete(database)

    await asyncio.wait_for(asyncio.gather(pageview_first(), delete_meanwhile()), timeout=30)
    assert await _slots(database) == 1
