"""Reading and validating ``POST /api/events`` bodies: one event object or an array of 1-100.

Rules the contract leaves open, decided here:

- Unknown fields are ignored: tracker versions evolve, and an old server must not reject a
  newer script's extra fields.
- ``hostname`` (else the host of ``url``) is required, so that every event can be checked
  against the site's domain.
- Identifiers (``website_id``, ``visitor_id``, ``session_id``, ``goal_name``) that are too long
  are rejected; free text a browser produces (``url``, ``referrer``, ``pathname``, ``title``,
  ``utm_*``) is truncated to its column size instead, so a long query string does not lose the
  pageview. ``url``, when given, must be an absolute http(s) URL.
- ``metadata`` and ``goal_name`` are read for ``goal`` events only and ignored on the others.
- ``utm_*`` fields absent from the body are taken from the query string of ``url``.
- Every event of a batch is validated before anything is stored; the 400 lists the problems
  with a ``[index].field`` path (plain ``field`` for a single object).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from datasaas.errors import FieldError, InvalidInput
from datasaas.resolvers import validation

__all__ = [
    "COUNTED_TYPES",
    "EVENT_TYPES",
    "FREE_TEXT_FIELDS",
    "MAX_BATCH",
    "MAX_HOSTNAME",
    "MAX_WEBSITE_ID",
    "TrackedEvent",
    "batch_cost",
    "parse_events",
]

MAX_BATCH: Final = 100
EVENT_TYPES: Final = ("pageview", "goal", "_heartbeat", "_leave", "_outbound")
COUNTED_TYPES: Final = frozenset({"pageview", "goal"})

MAX_WEBSITE_ID: Final = 64
_MAX_SESSION_ID: Final = 128
MAX_HOSTNAME: Final = 253
_MAX_URL: Final = 2048
_MAX_TITLE: Final = 1024
_MAX_UTM: Final = 255
_MAX_LANGUAGE: Final = 64
_MAX_SCREEN_WIDTH: Final = 100_000
_UTM_FIELDS: Final = ("utm_source", "utm_medium", "utm_campaign")
FREE_TEXT_FIELDS: Final = ("pathname", "referrer", "title", *_UTM_FIELDS)
"""What a browser writes and the tracker truncates to its column instead of refusing."""


@dataclass(frozen=True, slots=True)
class TrackedEvent:
    """One validated tracker event."""

    website_id: str
    visitor_id: str
    session_id: str
    event_type: str
    hostname: str
    url: str | None = None
    pathname: str | None = None
    referrer: str | None = None
    title: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    goal_name: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def counted(self) -> bool:
        """Whether the event is stored (pageviews and goals) rather than only accepted."""
        return self.event_type in COUNTED_TYPES


def batch_cost(body: object) -> int:
    """Return what a body costs against the per-IP event limit: its number of events.

    A body that is not a valid batch (empty, over 100 events, not an array) costs 1: it is
    refused without storing anything.
    """
    if isinstance(body, list) and 1 <= len(body) <= MAX_BATCH:
        return len(body)
    return 1


def parse_events(body: object) -> list[TrackedEvent]:
    """Validate a single event object or an array of 1-100; InvalidInput lists every problem."""
    if isinstance(body, dict):
        items: list[object] = [body]
    elif isinstance(body, list):
        if not 1 <= len(body) <= MAX_BATCH:
            raise InvalidInput(f"A batch holds 1 to {MAX_BATCH} events; got {len(body)}.")
        items = list(body)
    else:
        raise InvalidInput("The body must be an event object or an array of event objects.")
    indexed = isinstance(body, list)
    events: list[TrackedEvent] = []
    problems: list[FieldError] = []
    for index, item in enumerate(items):
        event, errors = _parse_one(item)
        for error in errors:
            path = f"[{index}].{error.field}" if indexed else error.field
            problems.append(FieldError(path, error.message))
        if event is not None:
            events.append(event)
    if problems:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvalidInput(f"Invalid event: {summary}{more}.", details=problems)
    return events


class _Collector:
    """Runs field checks, keeping the first error of each field instead of stopping."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def check(self, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except InvalidInput as exc:
            self.errors.extend(exc.details or [FieldError("body", exc.message)])
            return None


def _parse_one(item: object) -> tuple[TrackedEvent | None, list[FieldError]]:
    if not isinstance(item, dict):
        return None, [FieldError("body", "must be an event object")]
    c = _Collector()
    website_id = c.check(lambda: _required_id(item, "website_id", MAX_WEBSITE_ID))
    visitor_id = c.check(lambda: _required(item, "visitor_id", validation.visitor_id))
    session_id = c.check(lambda: _required(item, "session_id", _session_id))
    event_type = c.check(lambda: _event_type(item))
    url = c.check(lambda: _url(item.get("url")))
    hostname = c.check(lambda: _hostname(item.get("hostname"), url))
    referrer = c.check(lambda: _text(item.get("referrer"), "referrer", _MAX_URL))
    pathname = c.check(lambda: _text(item.get("pathname"), "pathname", _MAX_URL))
    title = c.check(lambda: _text(item.get("title"), "title", _MAX_TITLE))
    utm = {field: c.check(functools.partial(_utm, item, field, url)) for field in _UTM_FIELDS}
    c.check(lambda: _screen_width(item.get("screen_width")))
    c.check(lambda: _text(item.get("language"), "language", _MAX_LANGUAGE, truncate=False))
    goal_name = metadata = None
    if event_type == "goal":
        goal_name = c.check(lambda: _required(item, "goal_name", _goal_name))
        metadata = c.check(lambda: validation.metadata(item.get("metadata")))
    if c.errors:
        return None, c.errors
    event = TrackedEvent(
        website_id=website_id,
        visitor_id=visitor_id,
        session_id=session_id,
        event_type=event_type,
        hostname=hostname,
        url=url,
        pathname=pathname if pathname is not None else _path_of(url),
        referrer=referrer,
        title=title,
        utm_source=utm["utm_source"],
        utm_medium=utm["utm_medium"],
        utm_campaign=utm["utm_campaign"],
        goal_name=goal_name,
        metadata=metadata,
    )
    return event, []


def _required(item: dict[str, Any], field: str, check: Callable[[object], str]) -> str:
    value = item.get(field)
    if value is None:
        raise InvalidInput.for_field(field, "is required")
    return check(value)


def _required_id(item: dict[str, Any], field: str, max_length: int) -> str:
    return _required(
        item, field, lambda v: validation.require_string(v, field, max_length=max_length)
    )


def _session_id(value: object) -> str:
    return validation.visitor_id(value, field="session_id")


def _goal_name(value: object) -> str:
    return validation.normalize_goal_name(value, field="goal_name")


def _event_type(item: dict[str, Any]) -> str:
    value = item.get("event_type")
    if value is None:
        raise InvalidInput.for_field("event_type", "is required")
    if value not in EVENT_TYPES:
        raise InvalidInput.for_field("event_type", f"must be one of {', '.join(EVENT_TYPES)}")
    return str(value)


def _text(value: object, field: str, max_length: int, *, truncate: bool = True) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput.for_field(field, "must be a string")
    if len(value) > max_length and not truncate:
        raise InvalidInput.for_field(field, f"must be at most {max_length} characters")
    # Free text from browsers: drop control characters and unpaired surrogates (PostgreSQL
    # refuses them) rather than losing the pageview.
    printable = value if value.isprintable() else "".join(c for c in value if c.isprintable())
    return printable[:max_length] or None


def _url(value: object) -> str | None:
    url = _text(value, "url", _MAX_URL)
    if url is None:
        return None
    try:
        urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise InvalidInput.for_field("url", "is not a valid URL") from None
    return validation.http_url(url)


def _hostname(value: object, url: str | None) -> str:
    host = _text(value, "hostname", MAX_HOSTNAME, truncate=False)
    if host is None and url is not None:
        host = urlsplit(url).hostname
    if not host or not host.strip():
        raise InvalidInput.for_field("hostname", "is required (or a url with a host)")
    return host.strip().lower()


@functools.lru_cache(maxsize=4096)
def _query_of(url: str) -> dict[str, list[str]]:
    """A page URL's query parameters: parsed once for its three UTM fields, and once for all
    the events of the same page (a tracker batch is mostly a few pages). Read only."""
    return parse_qs(urlsplit(url).query)


def _utm(item: dict[str, Any], field: str, url: str | None) -> str | None:
    if field in item:
        value = _text(item[field], field, _MAX_URL)
    elif url is not None:
        values = _query_of(url).get(field)
        value = values[0] if values else None
    else:
        value = None
    value = (value or "").strip()[:_MAX_UTM]
    return value or None


def _screen_width(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SCREEN_WIDTH:
        raise InvalidInput.for_field(
            "screen_width", f"must be an integer from 0 to {_MAX_SCREEN_WIDTH}"
        )


def _path_of(url: str | None) -> str | None:
    if url is None:
        return None
    return urlsplit(url).path[:_MAX_URL] or "/"
