"""Payments written set-based, keys and sites looked up together: the answers of one at a time."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, func, select
from sqlmodel import col

from datasaas.errors import Conflict, NotFound, Unauthorized
from datasaas.resolvers import live
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.payments import PaymentIn
from datasaas.storage import outbox as outbox_store
from datasaas.storage import payments as payment_store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.engine import Database
from datasaas.storage.live_models import OutboxEvent
from datasaas.storage.models import Payment, Site, Visitor, VisitorSlot
from tests.factories import make_key, make_site


def _payment(tx: str, uid: str = "v1", amount: str = "10.00", **extra: object) -> PaymentIn:
    return PaymentIn(visitor_id=uid, amount=amount, currency="USD", transaction_id=tx, **extra)


async def _submit(database: Database, site_id: str, payment: PaymentIn) -> object:
    write = payment_resolvers.validate_payment(site_id, payment)
    return await database.submit_batched(payment_resolvers.record_payments, write)


async def _visitor(database: Database, uid: str, at: datetime, **first_touch: str) -> int:
    """A visitor of ``ds_test`` first seen at ``at``; with attributes, their first touch set."""
    async with database.write() as session:
        key = await visitor_store.visitor_key(session, site_id="ds_test", uid=uid, seen_at=at)
        if first_touch:
            await visitor_store.set_first_touches(session, at=at, touches={key: first_touch})
    return key


async def _scalar(database: Database, query: object) -> int:
    async with database.read() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def test_concurrent_payments_are_stored_set_based_with_their_derived_rows(
    database: Database,
) -> None:
    await make_site(database)
    commits: list[int] = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    paid = datetime.now(UTC) - timedelta(days=2)
    payments = [
        _payment(f"tx{n}", uid=f"v{n % 5}", paid_at=paid.isoformat(), payment_type="recurring")
        for n in range(30)
    ]
    results = await asyncio.gather(*(_submit(database, "ds_test", p) for p in payments))
    assert [r.created for r in results] == [True] * 30  # type: ignore[attr-defined]
    assert [r.payment.transaction_id for r in results] == [f"tx{n}" for n in range(30)]  # type: ignore[attr-defined]
    assert len({r.payment.id for r in results}) == 30  # type: ignore[attr-defined]
    assert len(commits) < 30
    assert await _scalar(database, select(func.count(col(Payment.id)))) == 30
    assert await _scalar(database, select(func.count(col(Visitor.id)))) == 5
    # Every payment's activity slot and its payment.created event, none twice.
    assert await _scalar(database, select(func.count()).select_from(VisitorSlot)) == 5
    created = select(func.count(col(OutboxEvent.id))).where(
        col(OutboxEvent.type) == "payment.created"
    )
    assert await _scalar(database, created) == 30


async def test_replays_refunds_and_conflicts_in_one_batch_behave_as_one_at_a_time(
    database: Database,
) -> None:
    await make_site(database)
    writes = [
        _payment("orig", amount="100.00"),
        _payment("orig", amount="100.00"),  # an identical replay in the same batch
        _payment("orig", amount="99.00"),  # a different payment under a taken id
        *(
            _payment(f"r{n}", amount="20.00", payment_type="refund", original_transaction_id="orig")
            for n in range(10)
        ),
    ]
    outcomes = await asyncio.gather(
        *(_submit(database, "ds_test", w) for w in writes), return_exceptions=True
    )
    assert outcomes[0].created is True  # type: ignore[union-attr]
    assert outcomes[1].created is False  # type: ignore[union-attr]
    assert isinstance(outcomes[2], Conflict)
    refunds = outcomes[3:]
    assert sum(1 for r in refunds if not isinstance(r, BaseException)) == 5
    assert all(isinstance(r, Conflict) for r in refunds if isinstance(r, BaseException))
    refunded = select(func.sum(col(Payment.amount_minor))).where(
        col(Payment.payment_type) == "refund"
    )
    assert await _scalar(database, refunded) == 10000
    assert await _scalar(database, select(func.count(col(Payment.id)))) == 6


async def test_a_payment_for_an_unknown_site_fails_alone(database: Database) -> None:
    await make_site(database)
    good, missing = await asyncio.gather(
        _submit(database, "ds_test", _payment("a")),
        _submit(database, "ds_nope", _payment("b")),
        return_exceptions=True,
    )
    assert good.created is True  # type: ignore[union-attr]
    assert isinstance(missing, NotFound)
    assert await _scalar(database, select(func.count(col(Payment.id)))) == 1


async def test_shared_key_lookups_answer_each_caller_and_see_a_revocation_at_once(
    database: Database,
) -> None:
    await make_site(database)
    keys = [await make_key(database) for _ in range(3)]
    headers = [f"Bearer {k.secret}" for k in keys] * 10
    statements: list[str] = []
    event.listen(
        database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_: statements.append(sql),
    )
    principals = await asyncio.gather(
        *(site_resolvers.authenticate_shared(database.keys, h) for h in headers)
    )
    assert [p.key_id for p in principals] == [k.key.id for k in keys] * 10
    lookups = [s for s in statements if "api_key" in s and s.lstrip().upper().startswith("SELECT")]
    assert 1 <= len(lookups) < 30  # shared, not one per request
    async with database.write() as session:
        await site_resolvers.revoke_key(session, key_id=keys[0].key.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await site_resolvers.authenticate_shared(database.keys, headers[0])
    with pytest.raises(Unauthorized, match="Invalid"):
        await site_resolvers.authenticate_shared(database.keys, "Bearer ds_live_" + "x" * 32)


async def test_shared_site_lookups_see_a_site_created_or_deleted_before_they_start(
    database: Database,
) -> None:
    assert await database.sites.find("ds_test") is None
    await make_site(database)
    found = await asyncio.gather(*(database.sites.find("ds_test") for _ in range(20)))
    assert {site.domain for site in found if site is not None} == {"example.com"}
    assert all(site is not None for site in found)
    async with database.write() as session:
        await session.execute(delete(Site).where(col(Site.id) == "ds_test"))
    assert await database.sites.find("ds_test") is None


async def test_batched_payment_events_carry_the_ledger_rows_as_they_read_back(
    database: Database,
) -> None:
    # A batch builds its payment events from what it inserted (no read back): they must be
    # exactly the ledger rows the database gives afterwards, first touch and conversion too.
    await make_site(database)
    at = datetime.now(UTC) - timedelta(hours=3)
    await _visitor(database, "tracked", at, source="Google", country="France", device_type="mobile")
    payments = [
        _payment(
            "p1",
            uid="tracked",
            amount="49.00",
            payment_type="recurring",
            billing_interval="month",
            paid_at=(at + timedelta(minutes=5)).isoformat(),
        ),
        PaymentIn(
            visitor_id="server-side",
            amount="12.34",
            currency="EUR",
            transaction_id="p2",
            product_name="Pro",
            paid_at=(at + timedelta(minutes=7, microseconds=123456)).isoformat(),
        ),
        _payment("p3", uid="tracked", amount="5.00"),
    ]
    for _ in range(2):  # the second time the tracked payer's first touch comes from memory
        await asyncio.gather(*(_submit(database, "ds_test", p) for p in payments))
        payments = [
            dataclasses.replace(p, transaction_id=f"{p.transaction_id}-again") for p in payments
        ]
    async with database.read() as session:
        events = (await session.scalars(select(OutboxEvent).order_by(col(OutboxEvent.id)))).all()
        ids = (await session.scalars(select(col(Payment.id)))).all()
        ledger = await payment_store.ledger_rows(session, payment_ids=[i for i in ids if i])
    sent = {e.payload["transaction_id"]: e.payload for e in events if e.type == "payment.created"}
    assert sent == {row.transaction_id: live.ledger_payload(row) for row in ledger.values()}
    assert len(sent) == 6
    assert sent["p1-again"]["source"] == "Google"
    assert sent["p2"]["reporting_currency"] == "USD"
    assert sent["p2"]["source"] is None


async def test_a_first_touch_is_remembered_once_set_and_never_while_pending(
    database: Database,
) -> None:
    await make_site(database)
    at = datetime.now(UTC) - timedelta(hours=1)
    tracked = await _visitor(database, "tracked", at, source="Bing")
    pending = await _visitor(database, "pending", at)
    reads: list[str] = []
    event.listen(
        database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_rest: reads.append(sql) if "FROM visitor" in sql else None,
    )

    async def touches() -> dict[int, object]:
        async with database.write() as session:
            return dict(await outbox_store.first_touches(session, visitor_ids=[tracked, pending]))

    first = await touches()
    assert first[tracked] == outbox_store.FirstTouch(source="Bing")
    assert first[pending] == outbox_store.FirstTouch()
    reads.clear()
    async with database.write() as session:  # the pending visitor's first pageview arrives
        await visitor_store.set_first_touches(
            session, at=at, touches={pending: {"source": "Twitter", "country": "Japan"}}
        )
    again = await touches()
    assert again[pending] == outbox_store.FirstTouch(source="Twitter", country="Japan")
    assert again[tracked] == outbox_store.FirstTouch(source="Bing")
    # Only the visitor that was pending was read again; the settled one came from memory.
    assert len([sql for sql in reads if sql.lstrip().upper().startswith("SELECT")]) == 1
    reads.clear()
    assert await touches() == again
    assert not [sql for sql in reads if sql.lstrip().upper().startswith("SELECT")]
