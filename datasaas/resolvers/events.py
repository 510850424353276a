"""Tracker events: checking them against their sites, and storing pageviews, goals and first touch.

A visitor's first pageview sets their first-touch record (source, landing page, UTM fields,
geo and device); later events never change it. A visitor first seen through a goal or a
payment gets the record from their first pageview whenever it arrives.

An event's host must be the site's domain or a subdomain of it. One exception: a site whose
domain is reserved for examples and testing (``example.com``/``.net``/``.org`` and the
``.test``, ``.example``, ``.invalid``, ``.localhost`` names of RFC 2606/6761, such as the demo
site's ``demo.example.com``) also accepts pages on loopback hosts (``localhost``,
``127.0.0.1``, ``[::1]``), so the tracker can be tried from a local page. Such a site can
receive no real traffic, so nothing is lost by relaxing the check for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.attribution import Device, host_matches, referrer_source
from datasaas.errors import FieldError, InvalidInput, NotFound
from datasaas.resolvers import live
from datasaas.resolvers.goals import NewCompletion, store_completions
from datasaas.resolvers.ingest import TrackedEvent
from datasaas.storage import pageviews as pageview_store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.models import Site

# Column sizes of the first-touch attributes on ``visitor``.
_MAX_GEO: Final = 100
_MAX_DEVICE_NAME: Final = 64
_RESERVED_DOMAINS: Final = ("example.com", "example.net", "example.org")
_RESERVED_TLDS: Final = frozenset({"test", "example", "invalid", "localhost"})


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who sent the events: device from the User-Agent, and geo of the client IP."""

    device: Device
    country: str | None = None
    city: str | None = None


async def sites_for(
    find: Callable[[str], Awaitable[Site | None]], *, events: Sequence[TrackedEvent]
) -> dict[str, Site]:
    """Return the sites the events name (``find`` looks one up); NotFound for an unknown one,
    InvalidInput on host mismatch.

    Field paths in the details follow ``parse_events``: ``[index].hostname`` for batches.
    """
    sites: dict[str, Site] = {}
    for website_id in dict.fromkeys(event.website_id for event in events):
        site = await find(website_id)
        if site is None:
            raise NotFound(f"Website '{website_id}' does not exist.")
        sites[website_id] = site
    mismatched = [
        (index, event)
        for index, event in enumerate(events)
        if not host_allowed(event.hostname, sites[event.website_id].domain)
    ]
    if mismatched:
        indexed = len(events) > 1
        details = [
            FieldError(
                f"[{index}].hostname" if indexed else "hostname",
                f"'{event.hostname}' is not {sites[event.website_id].domain} or a subdomain of it",
            )
            for index, event in mismatched
        ]
        raise InvalidInput(f"hostname: {details[0].message}.", details=details)
    return sites


def host_allowed(hostname: str, domain: str) -> bool:
    """Whether a page on ``hostname`` may send events to a site on ``domain``."""
    if host_matches(hostname, domain):
        return True
    return _is_reserved(domain) and _is_loopback(hostname)


def _is_reserved(domain: str) -> bool:
    name = domain.strip().lower().rstrip(".")
    if any(name == d or name.endswith("." + d) for d in _RESERVED_DOMAINS):
        return True
    return name.rsplit(".", 1)[-1] in _RESERVED_TLDS


def _is_loopback(hostname: str) -> bool:
    host = hostname.strip().lower()
    if host.startswith("["):  # "[::1]:8080"
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:  # "localhost:5173"
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One request's events to store: their sites, who sent them and when they arrived."""

    sites: dict[str, Site]
    events: Sequence[TrackedEvent]
    client: ClientInfo
    at: datetime


@dataclass(frozen=True, slots=True)
class _Arrived:
    event: TrackedEvent
    client: ClientInfo
    at: datetime


async def record_events(
    session: AsyncSession,
    *,
    sites: dict[str, Site],
    events: Sequence[TrackedEvent],
    client: ClientInfo,
    at: datetime,
) -> int:
    """Store the pageviews and goals among one request's ``events``; return how many."""
    (stored,) = await record_event_batches(session, [EventBatch(sites, events, client, at)])
    return stored


async def record_event_batches(session: AsyncSession, batches: Sequence[EventBatch]) -> list[int]:
    """Store the pageviews and goals of several requests together; return how many each stored.

    Written set-based, a few statements per site whatever the number of requests and events:
    the realtime presence, the goals (``store_completions``), then per site the visitors' keys
    (one lookup, one insert of the new ones, one lookup of those), their first touch (the first
    pageview of each visitor who has none yet, in arrival order), the pageviews and their
    activity slots. Each event keeps its own request's client and arrival instant.
    """
    seen: dict[str, dict[str, datetime]] = {}
    pageviews: dict[str, list[_Arrived]] = {}
    completions: list[NewCompletion] = []
    stored = [0] * len(batches)
    for number, batch in enumerate(batches):
        for event in batch.events:
            site_id = batch.sites[event.website_id].id
            if live.shows_presence(event.event_type):
                latest = seen.setdefault(site_id, {})
                latest[event.visitor_id] = max(latest.get(event.visitor_id, batch.at), batch.at)
            if not event.counted:
                continue
            stored[number] += 1
            if event.event_type == "goal":
                assert event.goal_name is not None
                completions.append(
                    NewCompletion(
                        site_id,
                        event.goal_name,
                        event.visitor_id,
                        event.url,
                        event.metadata,
                        batch.at,
                    )
                )
            else:
                pageviews.setdefault(site_id, []).append(_Arrived(event, batch.client, batch.at))
    sites = {site.id: site for batch in batches for site in batch.sites.values()}
    for site_id, latest in seen.items():
        await live.touch(session, site_id=site_id, seen=latest)
    await store_completions(session, completions)
    for site_id, arrived in pageviews.items():
        await _record_pageviews(session, site=sites[site_id], arrived=arrived)
    return stored


async def _record_pageviews(
    session: AsyncSession, *, site: Site, arrived: Sequence[_Arrived]
) -> None:
    # Each visitor's first pageview in arrival order gives their first touch: written with the
    # visitor row when this creates it, else (a visitor first seen server-side) set after.
    first: dict[str, _Arrived] = {}
    for item in arrived:
        first.setdefault(item.event.visitor_id, item)

    def touch_of(uid: str) -> dict[str, object]:
        item = first[uid]
        return _first_touch(site=site, event=item.event, client=item.client)

    keys = await visitor_store.visitor_keys(
        session,
        site_id=site.id,
        uids=list(first),
        seen_at={uid: item.at for uid, item in first.items()},
        created_with=lambda uid: {**touch_of(uid), "first_pageview_at": first[uid].at},
    )
    touches: dict[int, dict[str, object]] = {}
    touched_at: dict[int, datetime] = {}
    for uid, item in first.items():  # visitors that existed without a first touch
        visitor = keys[uid]
        if visitor.awaits_first_touch:
            touches[visitor.key] = touch_of(uid)
            touched_at[visitor.key] = item.at
    await visitor_store.set_first_touches(session, at=touched_at, touches=touches)
    await pageview_store.insert_pageviews(
        session,
        [
            {
                "site_id": site.id,
                "visitor_id": keys[item.event.visitor_id].key,
                "session_id": item.event.session_id,
                "occurred_at": item.at,
                "url": item.event.url,
                "hostname": item.event.hostname,
                "pathname": item.event.pathname,
                "referrer": item.event.referrer,
                "title": item.event.title,
            }
            for item in arrived
        ],
    )


def _first_touch(*, site: Site, event: TrackedEvent, client: ClientInfo) -> dict[str, object]:
    """The first-touch attributes a visitor's first pageview gives them."""
    device = client.device
    source = referrer_source(event.referrer, utm_source=event.utm_source, site_domain=site.domain)
    return {
        "landing_url": event.url,
        "referrer": event.referrer,
        "source": source,
        "utm_source": event.utm_source,
        "utm_medium": event.utm_medium,
        "utm_campaign": event.utm_campaign,
        "country": _clip(client.country, _MAX_GEO),
        "city": _clip(client.city, _MAX_GEO),
        "browser": _clip(device.browser, _MAX_DEVICE_NAME),
        "os": _clip(device.os, _MAX_DEVICE_NAME),
        "device_type": device.device_type,
    }


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None
