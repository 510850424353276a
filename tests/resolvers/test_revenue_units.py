"""The calendar-month rule of MRR, pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datasaas.resolvers.revenue import add_one_month, covers


@pytest.mark.parametrize(
    ("paid", "expected"),
    [
        ("2026-01-31T10:00:00", "2026-02-28T10:00:00"),
        ("2028-01-31T10:00:00", "2028-02-29T10:00:00"),
        ("2026-03-31T00:00:00", "2026-04-30T00:00:00"),
        ("2026-12-15T23:59:59", "2027-01-15T23:59:59"),
        ("2026-02-28T08:00:00", "2026-03-28T08:00:00"),
    ],
)
def test_add_one_month_clamps_to_month_end(paid: str, expected: str) -> None:
    at = datetime.fromisoformat(paid).replace(tzinfo=UTC)
    assert add_one_month(at) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_cover_is_half_open() -> None:
    paid = datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert covers(paid, paid)
    assert covers(paid, datetime(2026, 2, 28, 9, 59, 59, tzinfo=UTC))
    assert not covers(paid, datetime(2026, 2, 28, 10, tzinfo=UTC))
    assert not covers(paid, datetime(2026, 1, 31, 9, 59, tzinfo=UTC))
