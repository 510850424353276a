"""First-touch attribution end to end: geo and device on completions, and attributes that stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from datasaas.attribution import parse_user_agent
from datasaas.resolvers import events as event_resolvers
from datasaas.resolvers.ingest import parse_events
from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from datasaas.storage.models import Site
from tests.factories import bearer
from tests.tracking.helpers import (
    CHROME_MAC,
    FIREFOX_LINUX,
    LINKOPING,
    LONDON,
    MILTON,
    SAFARI_IPHONE,
    event,
    goal,
    stored_completions,
    visitor,
)

pytestmark = pytest.mark.usefixtures("site")

ATTRIBUTES = ("source", "country", "city", "browser", "os", "device_type")


async def completions(
    client: httpx.AsyncClient, key: IssuedKey, name: str = "signup"
) -> list[dict[str, Any]]:
    """The goal's completions through the REST API, newest first."""
    response = await client.get(
        f"/api/v1/goals/{name}/completions", params={"site_id": "ds_test"}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def attributes(completion: dict[str, Any]) -> tuple[Any, ...]:
    """The first-touch fields of a completion."""
    return tuple(completion[name] for name in ATTRIBUTES)


async def track(client: httpx.AsyncClient, body: Any, *, ip: str, ua: str) -> None:
    """Send events as a browser at ``ip`` behind the trusted proxy."""
    response = await client.post(
        "/api/events", json=body, headers={"x-forwarded-for": ip, "user-agent": ua}
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("ip", "ua", "referrer", "expected"),
    [
        pytest.param(
            LONDON,
            CHROME_MAC,
            "https://www.google.com/search?q=analytics",
            ("google.com", "United Kingdom", "London", "Chrome", "macOS", "desktop"),
            id="chrome-macos-london",
        ),
        pytest.param(
            MILTON,
            SAFARI_IPHONE,
            "https://news.ycombinator.com/item?id=1",
            ("news.ycombinator.com", "United States", "Milton", "Safari", "iOS", "mobile"),
            id="safari-ios-milton",
        ),
        pytest.param(
            LINKOPING,
            FIREFOX_LINUX,
            None,
            (None, "Sweden", "Linköping", "Firefox", "Linux", "desktop"),
            id="firefox-linux-linkoping",
        ),
    ],
)
async def test_completions_carry_geo_and_device_of_the_first_pageview(
    proxied_client: httpx.AsyncClient,
    database: Database,
    key: IssuedKey,
    ip: str,
    ua: str,
    referrer: str | None,
    expected: tuple[Any, ...],
) -> None:
    await track(proxied_client, event(referrer=referrer), ip=ip, ua=ua)
    await track(proxied_client, goal("signup", metadata={"plan": "pro"}), ip=ip, ua=ua)
    [completion] = await completions(proxied_client, key)
    assert attributes(completion) == expected
    assert completion["visitor_id"] == "v-1"
    [row] = await stored_completions(database)
    assert (row.url, row.properties) == ("https://example.com/", {"plan": "pro"})


async def test_untrusted_forwarded_for_is_ignored(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    # The peer 127.0.0.1 is not a trusted proxy here: the header is a client's claim.
    await track(client, event(), ip=LONDON, ua=CHROME_MAC)
    await track(client, goal(), ip=LONDON, ua=CHROME_MAC)
    [completion] = await completions(client, key)
    assert (completion["country"], completion["city"]) == (None, None)
    assert completion["browser"] == "Chrome"


async def test_forwarded_chain_is_walked_to_the_first_untrusted_hop(
    proxied_client: httpx.AsyncClient, key: IssuedKey
) -> None:
    # A client may prepend anything; only the entry our proxy appended counts.
    await track(proxied_client, event(), ip=f"{LONDON}, {MILTON}", ua=CHROME_MAC)
    await track(proxied_client, goal(), ip=MILTON, ua=CHROME_MAC)
    [completion] = await completions(proxied_client, key)
    assert completion["city"] == "Milton"


async def test_later_pageviews_change_nothing(
    proxied_client: httpx.AsyncClient, database: Database, key: IssuedKey
) -> None:
    first = event(referrer="https://www.google.com/", url="https://example.com/pricing")
    await track(proxied_client, first, ip=LONDON, ua=CHROME_MAC)
    later = event(
        session_id="s-2",
        referrer="https://twitter.com/someone",
        url="https://example.com/blog?utm_source=newsletter&utm_campaign=june",
    )
    await track(proxied_client, later, ip=MILTON, ua=SAFARI_IPHONE)
    await track(proxied_client, goal(), ip=MILTON, ua=SAFARI_IPHONE)

    [completion] = await completions(proxied_client, key)
    assert attributes(completion) == (
        "google.com", "United Kingdom", "London", "Chrome", "macOS", "desktop",
    )  # fmt: skip
    found = await visitor(database, "v-1")
    assert found.landing_url == "https://example.com/pricing"
    assert (found.utm_source, found.utm_campaign) == (None, None)


async def test_server_side_goal_days_later_carries_the_original_source(
    client: httpx.AsyncClient, database: Database, site: Site, key: IssuedKey
) -> None:
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    events = parse_events(event(referrer="https://news.ycombinator.com/item?id=7"))
    client_info = event_resolvers.ClientInfo(
        device=parse_user_agent(FIREFOX_LINUX), country="Sweden", city="Linköping"
    )
    async with database.write() as session:
        await event_resolvers.record_events(
            session, sites={site.id: site}, events=events, client=client_info, at=three_days_ago
        )

    response = await client.post(
        "/api/v1/goals",
        params={"site_id": "ds_test"},
        json={"name": "purchase", "visitor_id": "v-1"},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    [completion] = await completions(client, key, "purchase")
    assert attributes(completion) == (
        "news.ycombinator.com", "Sweden", "Linköping", "Firefox", "Linux", "desktop",
    )  # fmt: skip
    found = await visitor(database, "v-1")
    assert found.first_pageview_at == three_days_ago


async def test_visitor_first_seen_by_a_goal_gets_attributes_from_the_first_pageview(
    proxied_client: httpx.AsyncClient, key: IssuedKey
) -> None:
    await track(proxied_client, goal(), ip=LONDON, ua=CHROME_MAC)
    [before] = await completions(proxied_client, key)
    assert attributes(before) == (None,) * len(ATTRIBUTES)

    pageview = event(referrer="https://github.com/acme")
    await track(proxied_client, pageview, ip=MILTON, ua=SAFARI_IPHONE)
    [after] = await completions(proxied_client, key)
    assert attributes(after) == ("github.com", "United States", "Milton", "Safari", "iOS", "mobile")


@pytest.mark.parametrize(
    ("fields", "source"),
    [
        ({"referrer": "https://www.google.com/", "utm_source": "spring_sale"}, "spring_sale"),
        ({"referrer": "https://blog.example.com/post"}, None),
        ({"referrer": "https://example.com/pricing"}, None),
        ({"referrer": ""}, None),
        ({"referrer": "android-app://com.slack/"}, "com.slack"),
    ],
)
async def test_source_rules(
    client: httpx.AsyncClient, database: Database, fields: dict[str, str], source: str | None
) -> None:
    response = await client.post("/api/events", json=event(**fields))
    assert response.status_code == 202
    assert (await visitor(database, "v-1")).source == source


async def test_tracked_visitors_count_towards_conversion_rates(
    proxied_client: httpx.AsyncClient, key: IssuedKey
) -> None:
    for number in range(4):
        await track(proxied_client, event(visitor_id=f"v-{number}"), ip=LONDON, ua=CHROME_MAC)
    await track(proxied_client, goal(visitor_id="v-0"), ip=LONDON, ua=CHROME_MAC)
    response = await proxied_client.get(
        "/api/v1/goals", params={"site_id": "ds_test"}, headers=bearer(key)
    )
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert (row["goal_name"], row["unique_visitors"], row["conversion_rate"]) == (
        "signup",
        1,
        0.25,
    )


async def test_graphql_completions_show_the_same_first_touch(
    proxied_client: httpx.AsyncClient, key: IssuedKey
) -> None:
    await track(proxied_client, event(referrer="https://github.com/x"), ip=LONDON, ua=CHROME_MAC)
    await track(proxied_client, goal(), ip=LONDON, ua=CHROME_MAC)
    query = """
      query ($site: String!) {
        goal(siteId: $site, name: "signup") {
          completions(first: 5) {
            edges { node { visitorId source country city browser os deviceType } }
          }
        }
      }
    """
    response = await proxied_client.post(
        "/graphql", json={"query": query, "variables": {"site": "ds_test"}}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    [edge] = body["data"]["goal"]["completions"]["edges"]
    assert edge["node"] == {
        "visitorId": "v-1",
        "source": "github.com",
        "country": "United Kingdom",
        "city": "London",
        "browser": "Chrome",
        "os": "macOS",
        "deviceType": "desktop",
    }
