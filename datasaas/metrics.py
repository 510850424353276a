"""Metric arithmetic shared by every read (CONTRACT §6): exact, then rounded once."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def conversion_rate(converted: int, visitors: int) -> float:
    """Return ``converted / visitors`` rounded half-up to 4 decimals; 0 when no visitors."""
    if not visitors:
        return 0.0
    exact = Decimal(converted) / Decimal(visitors)
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
