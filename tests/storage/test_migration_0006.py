"""Migration 0006 leaves every recurring payment recorded before it monthly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from datasaas.storage.engine import Database
from datasaas.storage.migrate import upgrade


async def test_existing_recurring_payments_become_monthly(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(database, "0005")
        async with database.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO site (id, name, domain, currency, created_at) "
                    "VALUES ('ds_old', 'Old', 'old.example.com', 'USD', '2025-01-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO visitor (id, site_id, uid, first_seen_at) "
                    "VALUES (1, 'ds_old', 'v', '2025-01-01 00:00:00')"
                )
            )
            for number, kind in ((1, "recurring"), (2, "one_time")):
                await connection.execute(
                    text(
                        "INSERT INTO payment (id, site_id, visitor_id, transaction_id, "
                        "payment_type, amount_minor, currency, reporting_amount_minor, "
                        "reporting_currency, fx_rate, paid_at, created_at) VALUES "
                        f"({number}, 'ds_old', 1, 't{number}', '{kind}', 100, 'USD', 100, "
                        "'USD', '1', '2025-01-31 10:00:00', '2025-01-31 10:00:00')"
                    )
                )
        await upgrade(database)
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT billing_interval, billing_interval_count, covers_until_at, "
                        "provider FROM payment ORDER BY id"
                    )
                )
            ).all()
        assert rows[0][:2] == ("month", 1)
        assert datetime.fromisoformat(str(rows[0][2])).replace(tzinfo=UTC) == datetime(
            2025, 2, 28, 10, tzinfo=UTC
        )
        assert rows[1][:3] == (None, None, None)
        assert [row[3] for row in rows] == ["api", "api"]
    finally:
        await database.dispose()
