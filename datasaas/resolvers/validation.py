"""Input checks shared by the resolvers; each raises InvalidInput naming the field."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from datasaas.errors import InvalidInput
from datasaas.timerange import MAX_INSTANT, MIN_INSTANT

_GOAL_FIRST, _GOAL_REST, GOAL_NAME_MAX = "a-z0-9", "a-z0-9_:-", 64
GOAL_NAME_RE = re.compile(f"^[{_GOAL_FIRST}][{_GOAL_REST}]{{0,{GOAL_NAME_MAX - 1}}}$")
# What ``normalize_goal_name`` accepts before trimming, lowercasing and turning spaces to '_'
# (each run of spaces becomes one character), for the OpenAPI schema.
GOAL_NAME_INPUT_PATTERN = (
    rf"^\s*[A-Z{_GOAL_FIRST}](?:[A-Z{_GOAL_REST}]|\s+){{0,{GOAL_NAME_MAX - 1}}}\s*$"
)
VISITOR_ID_MAX = 128
URL_MAX = 2048
# What ``http_url`` accepts: an http(s) scheme, a host, no whitespace (for the OpenAPI schema).
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+[^\s]*$"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_FUTURE = timedelta(minutes=5)
METADATA_MAX_KEYS = 20
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 255
MAX_SAFE_INTEGER = 2**53
MAX_OFFSET = 2**62  # no practical bound; only what a 64-bit SQL OFFSET can take
OUT_OF_RANGE = "must lie between the years 2 and 9998 (UTC)"


def normalize_goal_name(value: object, *, field: str = "name") -> str:
    """Trim, lowercase, spaces to '_', then require ``^[a-z0-9][a-z0-9_:-]{0,63}$``."""
    if not isinstance(value, str):
        raise InvalidInput.for_field(field, "must be a string")
    name = re.sub(r"\s+", "_", value.strip().lower())
    if not GOAL_NAME_RE.fullmatch(name):
        raise InvalidInput.for_field(
            field,
            "goal names are 1-64 characters: letters, digits, '_', ':' or '-', "
            "starting with a letter or digit",
        )
    return name


def require_string(value: object, field: str, *, max_length: int, min_length: int = 1) -> str:
    """Return ``value`` if it is a string of acceptable length without control characters."""
    if not isinstance(value, str):
        raise InvalidInput.for_field(field, "must be a string")
    if not min_length <= len(value) <= max_length:
        raise InvalidInput.for_field(field, f"must be {min_length}-{max_length} characters")
    return plain_text(value, field)


def plain_text(text: str, field: str) -> str:
    """Return ``text`` unless it holds control characters or invalid Unicode (lone surrogates).

    Both backends must store exactly what they accept: PostgreSQL refuses NUL and unpaired
    surrogates outright, so the rule is applied before either sees them.
    """
    if not text.isprintable():
        raise InvalidInput.for_field(
            field, "must not contain control characters or invalid Unicode"
        )
    return text


def optional_string(value: object, field: str, *, max_length: int) -> str | None:
    """Return None or a string of at most ``max_length`` characters."""
    if value is None:
        return None
    return require_string(value, field, max_length=max_length, min_length=0)


def visitor_id(value: object, *, field: str = "visitor_id") -> str:
    """Return a visitor id: 1-128 printable characters."""
    text = require_string(value, field, max_length=VISITOR_ID_MAX)
    if not text.strip():
        raise InvalidInput.for_field(field, "must not be blank")
    return text


def http_url(value: object, *, field: str = "url") -> str | None:
    """Return None or an absolute http(s) URL of at most 2048 characters."""
    url = optional_string(value, field, max_length=URL_MAX)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput.for_field(field, "is not a valid URL") from None
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.netloc
        or any(c.isspace() for c in url)
    ):
        raise InvalidInput.for_field(field, "must be an absolute http(s) URL")
    return url


def metadata(value: object, *, field: str = "metadata") -> dict[str, Any] | None:
    """Return a flat JSON object: ≤ 20 keys of ≤ 64 chars; short strings, numbers, bools, nulls."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput.for_field(field, "must be a JSON object")
    if len(value) > METADATA_MAX_KEYS:
        raise InvalidInput.for_field(field, f"at most {METADATA_MAX_KEYS} keys")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{field}.{key}"
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_MAX_KEY:
            raise InvalidInput.for_field(field, f"keys must be 1-{METADATA_MAX_KEY} characters")
        plain_text(key, field)
        if item is None or isinstance(item, bool):
            clean[key] = item
        elif isinstance(item, str):
            if len(item) > METADATA_MAX_VALUE:
                raise InvalidInput.for_field(path, f"at most {METADATA_MAX_VALUE} characters")
            clean[key] = plain_text(item, path)
        elif isinstance(item, int | Decimal | float):
            clean[key] = _json_number(item, path)
        else:
            raise InvalidInput.for_field(
                path, "values must be strings, numbers, booleans or null (no nesting)"
            )
    return clean


def _json_number(value: int | Decimal | float, field: str) -> int | float:
    """A metadata number as stored: integers within ±2^53 stay exact, the rest are floats."""
    exact = Decimal(value) if isinstance(value, int | Decimal) else None
    integral = exact is not None and exact.is_finite() and exact == exact.to_integral_value()
    if exact is not None and integral and abs(exact) <= MAX_SAFE_INTEGER:
        return int(exact)
    as_float = float(value)
    if not math.isfinite(as_float):
        raise InvalidInput.for_field(field, "number out of range")
    return as_float


def instant(value: object, *, field: str, now: datetime) -> datetime:
    """Parse an ISO 8601 instant (no offset = UTC), not more than 5 minutes in the future."""
    if value is None:
        return now
    if not isinstance(value, str):
        raise InvalidInput.for_field(field, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.for_field(field, f"'{value}' is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput.for_field(field, OUT_OF_RANGE) from None
    if not MIN_INSTANT <= parsed <= MAX_INSTANT:
        raise InvalidInput.for_field(field, OUT_OF_RANGE)
    if parsed > now + MAX_FUTURE:
        raise InvalidInput.for_field(field, "must not be more than 5 minutes in the future")
    return parsed


def limit(value: object, *, field: str = "limit", default: int = DEFAULT_LIMIT) -> int:
    """Return a page size in 1..1000."""
    return _bounded_int(value, field, default, 1, MAX_LIMIT)


def offset(value: object, *, field: str = "offset") -> int:
    """Return an offset ≥ 0."""
    return _bounded_int(value, field, 0, 0, MAX_OFFSET)


def _bounded_int(value: object, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,19}", value.strip()):
        number = int(value)
    if number is None or not low <= number <= high:
        bounds = f"from {low} to {high}" if high < MAX_OFFSET else f">= {low}"
        raise InvalidInput.for_field(field, f"must be an integer {bounds}")
    return number
