"""Bad input on every /api/v1 route: always a 4xx with the error envelope, never a 500.

Black-box: requests go through the HTTP client; the database is only read to prove that a refused
write left no row behind (CONTRACT §4, §5, §6, §7).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from tests.factories import bearer, row_counts

SITE = "ds_test"
GOALS = "/api/v1/goals"
COMPLETIONS = "/api/v1/goals/signup/completions"
REVENUE = "/api/v1/revenue"
TIMESERIES = "/api/v1/revenue/timeseries"
PAYMENTS = "/api/v1/payments"
GET_ROUTES = [GOALS, COMPLETIONS, REVENUE, TIMESERIES]
PAGED_ROUTES = [GOALS, COMPLETIONS]
JSON = "application/json"
_MISSING: Any = object()


# --------------------------------------------------------------------------------------------
# helpers


def assert_no_crash(response: httpx.Response) -> None:
    """Bad input is never a 500 and never shows a stack trace."""
    assert response.status_code < 500, response.text
    assert "traceback" not in response.text.lower(), response.text
    assert 'file "' not in response.text.lower(), response.text


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """Assert the status and the envelope; ``field`` must be named in ``details``."""
    assert_no_crash(response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(JSON)
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert error["code"] == code, error
    message = error["message"]
    assert isinstance(message, str), error
    assert len(message.strip()) >= 10, error
    assert message != code
    if field is not None:
        details = error.get("details")
        assert isinstance(details, list), error
        assert details, error
        for detail in details:
            assert isinstance(detail["field"], str), detail
            assert isinstance(detail["message"], str), detail
            assert detail["message"].strip(), detail
        named = [detail["field"] for detail in details]
        assert field in named, f"expected details to name {field!r}, got {named!r}"
    return error


def in_minutes(minutes: int) -> str:
    """An ISO 8601 instant ``minutes`` from now (UTC)."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def goal_raw(**overrides: Any) -> bytes:
    """A goal body; overrides replace fields, ``_MISSING`` removes one."""
    fields: dict[str, Any] = {"name": "signup", "visitor_id": "v_goal"}
    for name, value in overrides.items():
        if value is _MISSING:
            fields.pop(name, None)
        else:
            fields[name] = value
    return json.dumps(fields).encode()


def payment_raw(amount: str | None = "10.00", **overrides: Any) -> bytes:
    """A payment body with ``amount`` spliced in as raw JSON text (``None`` omits it)."""
    fields: dict[str, Any] = {
        "visitor_id": "v_pay",
        "currency": "USD",
        "transaction_id": "txn_bad_input",
    }
    for name, value in overrides.items():
        if value is _MISSING:
            fields.pop(name, None)
        else:
            fields[name] = value
    text = json.dumps(fields)
    if amount is not None:
        text = text[:-1] + f', "amount": {amount}}}'
    return text.encode()


# --------------------------------------------------------------------------------------------
# GET routes


@dataclass(frozen=True)
class GetCase:
    """Query parameters that must be refused with 400 naming ``field``."""

    params: dict[str, str]
    field: str
    drop_site_id: bool = False


COMMON_GET_CASES = [
    pytest.param(GetCase({}, "site_id", drop_site_id=True), id="site_id-missing"),
    pytest.param(GetCase({"start": "2026-13-01"}, "start"), id="start-month-13"),
    pytest.param(GetCase({"start": "2026-02-30"}, "start"), id="start-feb-30"),
    pytest.param(GetCase({"start": "yesterday"}, "start"), id="start-yesterday"),
    pytest.param(GetCase({"end": "garbage"}, "end"), id="end-garbage"),
    pytest.param(GetCase({"end": "2026-03-01T25:00:00Z"}, "end"), id="end-hour-25"),
    pytest.param(GetCase({"start": "0001-01-01"}, "start"), id="start-year-1"),
    pytest.param(GetCase({"end": "2026-03-01T12:00:00+24:00"}, "end"), id="end-offset-24h"),
    pytest.param(GetCase({"timezone": "Mars/Phobos"}, "timezone"), id="timezone-unknown"),
    pytest.param(GetCase({"timezone": "../../etc/passwd"}, "timezone"), id="timezone-path"),
    pytest.param(GetCase({"timezone": "+05:30"}, "timezone"), id="timezone-offset"),
    pytest.param(
        GetCase({"start": "2026-03-10", "end": "2026-03-01"}, "start"), id="start-after-end"
    ),
    pytest.param(
        GetCase({"start": "2026-03-01T12:00:01Z", "end": "2026-03-01T12:00:00Z"}, "start"),
        id="start-one-second-after-end",
    ),
]
PAGING_CASES = [
    pytest.param(GetCase({"limit": "0"}, "limit"), id="limit-0"),
    pytest.param(GetCase({"limit": "1001"}, "limit"), id="limit-1001"),
    pytest.param(GetCase({"limit": "abc"}, "limit"), id="limit-abc"),
    pytest.param(GetCase({"limit": "-1"}, "limit"), id="limit-negative"),
    pytest.param(GetCase({"limit": "1.5"}, "limit"), id="limit-fraction"),
    pytest.param(GetCase({"offset": "-1"}, "offset"), id="offset-negative"),
    pytest.param(GetCase({"offset": "abc"}, "offset"), id="offset-abc"),
]
TIMESERIES_CASES = [
    pytest.param(GetCase({"granularity": "minute"}, "granularity"), id="granularity-minute"),
    pytest.param(GetCase({"granularity": "daily"}, "granularity"), id="granularity-daily"),
    pytest.param(
        GetCase({"granularity": "hour", "start": "2024-01-01", "end": "2025-12-31"}, "granularity"),
        id="hourly-over-10000-buckets",
    ),
    pytest.param(
        GetCase({"granularity": "day", "start": "1990-01-01", "end": "2026-01-01"}, "granularity"),
        id="daily-over-10000-buckets",
    ),
]
BAD_GOAL_NAMES = [
    pytest.param("-bad", id="leading-dash"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("sign%2Fup", id="encoded-slash"),
    pytest.param("sign%3Fup", id="encoded-question-mark"),
    pytest.param("%C3%A9t%C3%A9", id="non-ascii"),
    pytest.param("_signup", id="leading-underscore"),
]


async def _get(
    client: httpx.AsyncClient, key: IssuedKey, path: str, case: GetCase
) -> httpx.Response:
    params = dict(case.params) if case.drop_site_id else {"site_id": SITE, **case.params}
    return await client.get(path, params=params, headers=bearer(key))


async def test_valid_reads_succeed(client: httpx.AsyncClient, key: IssuedKey) -> None:
    """Control: with good parameters every route answers 200, so the 400s below are about input."""
    params = {"site_id": SITE, "start": "2026-03-01", "end": "2026-03-26", "timezone": "UTC"}
    for path in GET_ROUTES:
        response = await client.get(path, params=params, headers=bearer(key))
        assert response.status_code == 200, (path, response.text)
        assert "results" in response.json()
    paged = {**params, "limit": "1000", "offset": "0"}
    for path in PAGED_ROUTES:
        response = await client.get(path, params=paged, headers=bearer(key))
        assert response.status_code == 200, (path, response.text)
    for granularity in ("hour", "day", "week", "month", "DAY"):
        response = await client.get(
            TIMESERIES, params={**params, "granularity": granularity}, headers=bearer(key)
        )
        assert response.status_code == 200, (granularity, response.text)


@pytest.mark.parametrize("path", GET_ROUTES)
@pytest.mark.parametrize("case", COMMON_GET_CASES)
async def test_get_rejects_bad_range_params(
    client: httpx.AsyncClient, key: IssuedKey, path: str, case: GetCase
) -> None:
    response = await _get(client, key, path, case)
    assert_error(response, 400, "invalid_request", case.field)


@pytest.mark.parametrize("path", PAGED_ROUTES)
@pytest.mark.parametrize("case", PAGING_CASES)
async def test_get_rejects_bad_paging(
    client: httpx.AsyncClient, key: IssuedKey, path: str, case: GetCase
) -> None:
    response = await _get(client, key, path, case)
    assert_error(response, 400, "invalid_request", case.field)


@pytest.mark.parametrize("case", TIMESERIES_CASES)
async def test_timeseries_rejects_bad_granularity(
    client: httpx.AsyncClient, key: IssuedKey, case: GetCase
) -> None:
    response = await _get(client, key, TIMESERIES, case)
    assert_error(response, 400, "invalid_request", case.field)


async def test_hourly_series_over_limit_says_why(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.get(
        TIMESERIES,
        params={"site_id": SITE, "granularity": "hour", "start": "2024-01-01", "end": "2025-12-31"},
        headers=bearer(key),
    )
    error = assert_error(response, 400, "invalid_request", "granularity")
    assert "10,000" in error["message"] or "10000" in error["message"]


@pytest.mark.parametrize("name", BAD_GOAL_NAMES)
async def test_completions_reject_bad_goal_name_in_path(
    client: httpx.AsyncClient, key: IssuedKey, name: str
) -> None:
    response = await client.get(
        f"{GOALS}/{name}/completions", params={"site_id": SITE}, headers=bearer(key)
    )
    assert_error(response, 400, "invalid_request", "name")


async def test_completions_normalise_goal_name_in_path(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    response = await client.get(
        f"{GOALS}/%20Sign%20Up%20/completions", params={"site_id": SITE}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["goal_name"] == "sign_up"
    assert body["results"] == []


# --------------------------------------------------------------------------------------------
# POST bodies


@dataclass(frozen=True)
class PostCase:
    """A body that must be refused; ``make`` builds it when the test runs."""

    make: Callable[[], bytes]
    field: str | None
    status: int = 400
    code: str = "invalid_request"
    content_type: str | None = JSON


def _metadata_with_keys(count: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(count)}


GOAL_CASES = [
    pytest.param(PostCase(lambda: goal_raw(name=_MISSING), "name"), id="name-missing"),
    pytest.param(PostCase(lambda: goal_raw(name=None), "name"), id="name-null"),
    pytest.param(PostCase(lambda: goal_raw(name=""), "name"), id="name-empty"),
    pytest.param(PostCase(lambda: goal_raw(name="   "), "name"), id="name-blank"),
    pytest.param(PostCase(lambda: goal_raw(name="-bad"), "name"), id="name-leading-dash"),
    pytest.param(PostCase(lambda: goal_raw(name="a" * 65), "name"), id="name-65-chars"),
    pytest.param(PostCase(lambda: goal_raw(name="sign/up"), "name"), id="name-slash"),
    pytest.param(PostCase(lambda: goal_raw(name="café"), "name"), id="name-non-ascii"),
    pytest.param(PostCase(lambda: goal_raw(name=12), "name"), id="name-number"),
    pytest.param(
        PostCase(lambda: goal_raw(visitor_id=_MISSING), "visitor_id"), id="visitor_id-missing"
    ),
    pytest.param(PostCase(lambda: goal_raw(visitor_id=""), "visitor_id"), id="visitor_id-empty"),
    pytest.param(
        PostCase(lambda: goal_raw(visitor_id="v" * 129), "visitor_id"), id="visitor_id-129-chars"
    ),
    pytest.param(
        PostCase(lambda: goal_raw(visitor_id="v\x00id"), "visitor_id"), id="visitor_id-nul"
    ),
    pytest.param(
        PostCase(lambda: goal_raw(visitor_id="v\nid"), "visitor_id"), id="visitor_id-newline"
    ),
    pytest.param(PostCase(lambda: goal_raw(visitor_id=42), "visitor_id"), id="visitor_id-number"),
    pytest.param(PostCase(lambda: goal_raw(url="ftp://x"), "url"), id="url-ftp"),
    pytest.param(PostCase(lambda: goal_raw(url="not a url"), "url"), id="url-not-a-url"),
    pytest.param(PostCase(lambda: goal_raw(url="/relative/path"), "url"), id="url-relative"),
    pytest.param(
        PostCase(lambda: goal_raw(url="https://example.com/" + "a" * 2029), "url"),
        id="url-2049-chars",
    ),
    pytest.param(PostCase(lambda: goal_raw(url=12), "url"), id="url-number"),
    pytest.param(
        PostCase(lambda: goal_raw(metadata={"plan": {"tier": "pro"}}), "metadata.plan"),
        id="metadata-nested-object",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(metadata={"plan": ["pro"]}), "metadata.plan"),
        id="metadata-nested-array",
    ),
    pytest.param(PostCase(lambda: goal_raw(metadata=["pro"]), "metadata"), id="metadata-array"),
    pytest.param(PostCase(lambda: goal_raw(metadata="pro"), "metadata"), id="metadata-string"),
    pytest.param(PostCase(lambda: goal_raw(metadata=3), "metadata"), id="metadata-number"),
    pytest.param(
        PostCase(lambda: goal_raw(metadata=_metadata_with_keys(21)), "metadata"),
        id="metadata-21-keys",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(metadata={"k" * 65: "v"}), "metadata"), id="metadata-65-char-key"
    ),
    pytest.param(
        PostCase(lambda: goal_raw(metadata={"plan": "v" * 256}), "metadata.plan"),
        id="metadata-256-char-value",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(completed_at="garbage"), "completed_at"),
        id="completed_at-garbage",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(completed_at=12), "completed_at"), id="completed_at-number"
    ),
    pytest.param(
        PostCase(lambda: goal_raw(completed_at=in_minutes(10)), "completed_at"),
        id="completed_at-10-minutes-ahead",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(completed_at="0001-01-01T00:00:00+01:00"), "completed_at"),
        id="completed_at-before-year-1-in-utc",
    ),
    pytest.param(PostCase(lambda: goal_raw(url="https://example.com/\u0000"), "url"), id="url-nul"),
    pytest.param(
        PostCase(lambda: goal_raw(url="https://example.com/\ud800"), "url"),
        id="url-lone-surrogate",
    ),
    pytest.param(PostCase(lambda: goal_raw(plan="pro"), "plan"), id="unknown-field"),
    pytest.param(PostCase(lambda: goal_raw(site_id=SITE), "site_id"), id="site_id-in-body"),
    pytest.param(PostCase(lambda: b'[{"name": "signup", "visitor_id": "v"}]', None), id="array"),
    pytest.param(PostCase(lambda: b'"signup"', None), id="string"),
    pytest.param(PostCase(lambda: b"null", None), id="null"),
    pytest.param(PostCase(lambda: b'{"name": "signup", "visitor_id": ', None), id="invalid-json"),
    pytest.param(PostCase(lambda: b"", None), id="empty-body"),
    pytest.param(
        PostCase(lambda: b'{"name": "a", "name": "b", "visitor_id": "v"}', None),
        id="duplicate-key",
    ),
    pytest.param(
        PostCase(
            lambda: b"name=signup&visitor_id=v",
            None,
            415,
            "unsupported_media_type",
            "text/plain",
        ),
        id="text-plain",
    ),
    pytest.param(
        PostCase(
            lambda: b"name=signup&visitor_id=v",
            None,
            415,
            "unsupported_media_type",
            "application/x-www-form-urlencoded",
        ),
        id="form-encoded",
    ),
    pytest.param(
        PostCase(lambda: goal_raw(), None, 415, "unsupported_media_type", None),
        id="no-content-type",
    ),
    pytest.param(
        PostCase(
            lambda: goal_raw(metadata={"blob": "x"}, url="https://e.com/" + "a" * 65 * 1024),
            None,
            413,
            "payload_too_large",
        ),
        id="65-KiB",
    ),
]

PAYMENT_CASES = [
    pytest.param(PostCase(lambda: payment_raw("10.001"), "amount"), id="amount-10.001-USD"),
    pytest.param(
        PostCase(lambda: payment_raw("1.5", currency="JPY"), "amount"), id="amount-1.5-JPY"
    ),
    pytest.param(
        PostCase(lambda: payment_raw("0.0001", currency="KWD"), "amount"), id="amount-4dp-KWD"
    ),
    pytest.param(PostCase(lambda: payment_raw("NaN"), None), id="amount-NaN"),
    pytest.param(PostCase(lambda: payment_raw("Infinity"), None), id="amount-Infinity"),
    pytest.param(PostCase(lambda: payment_raw("-Infinity"), None), id="amount-minus-Infinity"),
    pytest.param(PostCase(lambda: payment_raw('"NaN"'), "amount"), id="amount-NaN-string"),
    pytest.param(PostCase(lambda: payment_raw("-1"), "amount"), id="amount-negative"),
    pytest.param(PostCase(lambda: payment_raw("-0.01"), "amount"), id="amount-minus-a-cent"),
    pytest.param(
        PostCase(lambda: payment_raw("1000000000.01"), "amount"), id="amount-over-a-billion"
    ),
    pytest.param(PostCase(lambda: payment_raw("1e400"), "amount"), id="amount-1e400"),
    pytest.param(PostCase(lambda: payment_raw("1e-999999"), "amount"), id="amount-1e-999999"),
    pytest.param(PostCase(lambda: payment_raw('"abc"'), "amount"), id="amount-abc"),
    pytest.param(PostCase(lambda: payment_raw('""'), "amount"), id="amount-empty-string"),
    pytest.param(PostCase(lambda: payment_raw("true"), "amount"), id="amount-true"),
    pytest.param(PostCase(lambda: payment_raw("null"), "amount"), id="amount-null"),
    pytest.param(PostCase(lambda: payment_raw('{"value": 1}'), "amount"), id="amount-object"),
    pytest.param(PostCase(lambda: payment_raw(None), "amount"), id="amount-missing"),
    pytest.param(PostCase(lambda: payment_raw(currency="XYZ"), "currency"), id="currency-XYZ"),
    pytest.param(PostCase(lambda: payment_raw(currency="US"), "currency"), id="currency-US"),
    pytest.param(PostCase(lambda: payment_raw(currency="USDX"), "currency"), id="currency-USDX"),
    pytest.param(PostCase(lambda: payment_raw(currency=12), "currency"), id="currency-number"),
    pytest.param(PostCase(lambda: payment_raw(currency=""), "currency"), id="currency-empty"),
    pytest.param(
        PostCase(lambda: payment_raw(currency=_MISSING), "currency"), id="currency-missing"
    ),
    pytest.param(
        PostCase(lambda: payment_raw(currency="AFN"), "currency"), id="currency-without-ECB-rate"
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id=""), "transaction_id"),
        id="transaction_id-empty",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id="t" * 256), "transaction_id"),
        id="transaction_id-256-chars",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id=_MISSING), "transaction_id"),
        id="transaction_id-missing",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id=123), "transaction_id"),
        id="transaction_id-number",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(visitor_id=_MISSING), "visitor_id"), id="visitor_id-missing"
    ),
    pytest.param(
        PostCase(lambda: payment_raw(visitor_id="v" * 129), "visitor_id"),
        id="visitor_id-129-chars",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(payment_type="gift"), "payment_type"), id="payment_type-gift"
    ),
    pytest.param(
        PostCase(lambda: payment_raw(payment_type=1), "payment_type"), id="payment_type-number"
    ),
    pytest.param(
        PostCase(lambda: payment_raw(product_name="p" * 256), "product_name"),
        id="product_name-256-chars",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(paid_at=in_minutes(10)), "paid_at"),
        id="paid_at-10-minutes-ahead",
    ),
    pytest.param(PostCase(lambda: payment_raw(paid_at="garbage"), "paid_at"), id="paid_at-garbage"),
    pytest.param(
        PostCase(
            lambda: payment_raw(original_transaction_id="txn_other"), "original_transaction_id"
        ),
        id="original_transaction_id-on-one_time",
    ),
    pytest.param(
        PostCase(
            lambda: payment_raw(payment_type="recurring", original_transaction_id="txn_other"),
            "original_transaction_id",
        ),
        id="original_transaction_id-on-recurring",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(paid_at="0001-01-01T00:00:00+01:00"), "paid_at"),
        id="paid_at-before-year-1-in-utc",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(paid_at="9999-12-31T23:59:59-01:00"), "paid_at"),
        id="paid_at-after-year-9999-in-utc",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id="txn\u0000"), "transaction_id"),
        id="transaction_id-nul",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(transaction_id="txn\ud800"), "transaction_id"),
        id="transaction_id-lone-surrogate",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(product_name="Pro\u0000"), "product_name"),
        id="product_name-nul",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(product_name="Pro\ud800"), "product_name"),
        id="product_name-lone-surrogate",
    ),
    pytest.param(
        PostCase(
            lambda: payment_raw(payment_type="refund", original_transaction_id="txn\ud800"),
            "original_transaction_id",
        ),
        id="original_transaction_id-lone-surrogate",
    ),
    pytest.param(PostCase(lambda: payment_raw(coupon="X"), "coupon"), id="unknown-field"),
    pytest.param(PostCase(lambda: b"[]", None), id="array"),
    pytest.param(PostCase(lambda: b'{"amount": 1.00,}', None), id="invalid-json"),
    pytest.param(
        PostCase(lambda: payment_raw(), None, 415, "unsupported_media_type", "text/plain"),
        id="text-plain",
    ),
    pytest.param(
        PostCase(lambda: payment_raw(product_name="p" * 65 * 1024), None, 413, "payload_too_large"),
        id="65-KiB",
    ),
]


async def _post(
    client: httpx.AsyncClient,
    key: IssuedKey,
    path: str,
    case: PostCase,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {**bearer(key), **(headers or {})}
    if case.content_type is not None:
        sent["Content-Type"] = case.content_type
    return await client.post(path, params={"site_id": SITE}, content=case.make(), headers=sent)


async def test_valid_writes_are_counted(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """Control: valid bodies do write rows, so "counts unchanged" below is a real check."""
    before = await row_counts(database)
    goal = await client.post(
        GOALS,
        params={"site_id": SITE},
        content=goal_raw(),
        headers={**bearer(key), "Content-Type": JSON},
    )
    assert goal.status_code == 200, goal.text
    payment = await client.post(
        PAYMENTS,
        params={"site_id": SITE},
        content=payment_raw(),
        headers={**bearer(key), "Content-Type": JSON},
    )
    assert payment.status_code == 200, payment.text
    after = await row_counts(database)
    assert after["goal_completion"] == before["goal_completion"] + 1
    assert after["goal"] == before["goal"] + 1
    assert after["payment"] == before["payment"] + 1
    assert after["visitor"] == before["visitor"] + 2


@pytest.mark.parametrize("case", GOAL_CASES)
async def test_goal_post_rejects_bad_body(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, case: PostCase
) -> None:
    before = await row_counts(database)
    response = await _post(client, key, GOALS, case)
    assert_error(response, case.status, case.code, case.field)
    assert await row_counts(database) == before


@pytest.mark.parametrize("case", PAYMENT_CASES)
async def test_payment_post_rejects_bad_body(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, case: PostCase
) -> None:
    before = await row_counts(database)
    response = await _post(client, key, PAYMENTS, case)
    assert_error(response, case.status, case.code, case.field)
    assert await row_counts(database) == before


@pytest.mark.parametrize("path", [GOALS, PAYMENTS])
async def test_post_rejects_oversized_body_streamed_without_length(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, path: str
) -> None:
    """A chunked body (no Content-Length) over 64 KiB is cut off with 413 too."""
    before = await row_counts(database)
    payload = goal_raw(url="https://e.com/" + "a" * 70 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    response = await client.post(
        path,
        params={"site_id": SITE},
        content=chunks(),
        headers={**bearer(key), "Content-Type": JSON},
    )
    assert_error(response, 413, "payload_too_large")
    assert await row_counts(database) == before


async def test_body_just_under_limit_is_accepted(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    """64 KiB is the limit, not less: a 63 KiB body with valid fields is processed."""
    body = goal_raw(metadata={f"k{i}": "v" * 255 for i in range(20)})
    padded = body[:-1] + b" " * (63 * 1024 - len(body)) + b"}"
    assert len(padded) < 64 * 1024
    response = await client.post(
        GOALS,
        params={"site_id": SITE},
        content=padded,
        headers={**bearer(key), "Content-Type": JSON},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("header", "field"),
    [
        pytest.param("k" * 256, "Idempotency-Key", id="256-chars"),
        pytest.param("   ", "Idempotency-Key", id="blank"),
    ],
)
@pytest.mark.parametrize("path", [GOALS, PAYMENTS])
async def test_post_rejects_bad_idempotency_key(
    client: httpx.AsyncClient,
    key: IssuedKey,
    database: Database,
    path: str,
    header: str,
    field: str,
) -> None:
    before = await row_counts(database)
    body = goal_raw() if path == GOALS else payment_raw()
    response = await client.post(
        path,
        params={"site_id": SITE},
        content=body,
        headers={**bearer(key), "Content-Type": JSON, "Idempotency-Key": header},
    )
    assert_error(response, 400, "invalid_request", field)
    assert await row_counts(database) == before


@pytest.mark.parametrize("path", [GOALS, PAYMENTS])
async def test_post_without_site_id_is_refused(
    client: httpx.AsyncClient, key: IssuedKey, database: Database, path: str
) -> None:
    before = await row_counts(database)
    body = goal_raw() if path == GOALS else payment_raw()
    response = await client.post(path, content=body, headers={**bearer(key), "Content-Type": JSON})
    assert_error(response, 400, "invalid_request", "site_id")
    assert await row_counts(database) == before


async def test_goal_name_is_trimmed_lowercased_and_underscored(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    response = await client.post(
        GOALS,
        params={"site_id": SITE},
        json={"name": "  Sign Up  ", "visitor_id": "v_1"},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "results": {"created": True, "goal_name": "sign_up"},
        "meta": {"site_id": SITE},
    }
    listed = await client.get(GOALS, params={"site_id": SITE}, headers=bearer(key))
    assert [g["goal_name"] for g in listed.json()["results"]] == ["sign_up"]
    completions = await client.get(
        f"{GOALS}/Sign%20Up/completions", params={"site_id": SITE}, headers=bearer(key)
    )
    assert completions.status_code == 200, completions.text
    assert [c["visitor_id"] for c in completions.json()["results"]] == ["v_1"]


async def test_unknown_route_is_enveloped(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.get("/api/v1/nope", params={"site_id": SITE}, headers=bearer(key))
    assert_error(response, 404, "not_found")


async def test_wrong_method_is_enveloped(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.delete(GOALS, params={"site_id": SITE}, headers=bearer(key))
    assert_no_crash(response)
    assert response.status_code == 405, response.text
    assert isinstance(response.json()["error"]["message"], str)


async def test_openapi_documents_400_not_422(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    goals = schema["paths"]["/api/v1/goals"]["get"]["responses"]
    assert goals["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorEnvelope")


async def test_large_offsets_are_fine(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.get(
        "/api/v1/goals?site_id=ds_test&offset=1000000000000", headers=bearer(key)
    )
    assert response.status_code == 200
    assert response.json()["results"] == []
