"""``POST /api/events``: status codes, batches, bots, CORS, the per-IP limit, the tracker script."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from datasaas.storage.engine import BACKGROUND, Database
from datasaas.storage.models import Site
from tests.factories import make_site
from tests.tracking.helpers import GOOGLEBOT, event, goal, pageviews, stored, visitor

pytestmark = pytest.mark.usefixtures("site")

NOTHING = {"visitors": 0, "pageviews": 0, "completions": 0, "slots": 0}


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    """POST a JSON body to /api/events."""
    return await client.post("/api/events", json=body, headers=headers)


def error(response: httpx.Response) -> dict[str, Any]:
    """The error object of an envelope."""
    body: dict[str, Any] = response.json()["error"]
    return body


# ---------------------------------------------------------------------------- 202


async def test_pageview_is_accepted_and_stored(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await post(client, event(title="Home", referrer="https://www.google.com/"))
    assert response.status_code == 202
    assert response.json() == {"received": 1, "stored": 1}
    assert response.headers["access-control-allow-origin"] == "*"
    assert await stored(database) == {"visitors": 1, "pageviews": 1, "completions": 0, "slots": 1}
    [row] = await pageviews(database)
    assert (row.session_id, row.pathname, row.title) == ("s-1", "/", "Home")
    assert row.referrer == "https://www.google.com/"


async def test_goal_is_stored_under_its_normalised_name(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await post(client, goal(" Sign Up ", metadata={"plan": "pro", "seats": 3}))
    assert response.status_code == 202
    assert response.json() == {"received": 1, "stored": 1}
    counts = await stored(database)
    assert (counts["completions"], counts["pageviews"], counts["visitors"]) == (1, 0, 1)


@pytest.mark.parametrize("kind", ["_heartbeat", "_leave", "_outbound"])
async def test_non_counted_events_are_accepted_and_not_stored(
    client: httpx.AsyncClient, database: Database, kind: str
) -> None:
    response = await post(client, event(event_type=kind))
    assert response.status_code == 202
    assert response.json() == {"received": 1, "stored": 0}
    assert await stored(database) == NOTHING


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient, database: Database) -> None:
    body = event(
        tracker_version="9.9", props={"nested": {"x": 1}}, screen_width=1440, language="en"
    )
    response = await post(client, body)
    assert response.status_code == 202
    assert (await stored(database))["pageviews"] == 1


@pytest.mark.parametrize(
    "hostname",
    ["example.com", "www.example.com", "app.example.com", "EXAMPLE.com", "example.com:8443"],
)
async def test_site_domain_and_subdomains_are_accepted(
    client: httpx.AsyncClient, hostname: str
) -> None:
    assert (await post(client, event(hostname=hostname))).status_code == 202


async def test_hostname_defaults_to_the_host_of_url(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = event(hostname=None, pathname=None, url="https://shop.example.com/cart?x=1")
    assert (await post(client, body)).status_code == 202
    [row] = await pageviews(database)
    assert (row.hostname, row.pathname) == ("shop.example.com", "/cart")


async def test_utm_fields_default_to_the_query_of_url(
    client: httpx.AsyncClient, database: Database
) -> None:
    url = "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=may"
    assert (await post(client, event(url=url))).status_code == 202
    found = await visitor(database, "v-1")
    assert (found.source, found.utm_medium, found.utm_campaign) == ("newsletter", "email", "may")


async def test_overlong_free_text_is_truncated_not_rejected(
    client: httpx.AsyncClient, database: Database
) -> None:
    long_url = "https://example.com/?q=" + "x" * 3000
    response = await post(client, event(url=long_url, title="t" * 2000, referrer=long_url))
    assert response.status_code == 202
    [row] = await pageviews(database)
    assert row.url is not None
    assert len(row.url) == 2048
    assert row.title is not None
    assert len(row.title) == 1024


async def test_control_characters_in_free_text_are_dropped_on_both_backends(
    client: httpx.AsyncClient, database: Database
) -> None:
    # PostgreSQL refuses NUL and unpaired surrogates; the pageview must survive them anyway.
    body = json.dumps(
        event(title="Pro\u0000 plan\ud800", referrer="https://news.example.org/\u0000")
    )  # ASCII JSON: the surrogate travels as a \ud800 escape, as a buggy client would send it
    response = await client.post(
        "/api/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202
    [row] = await pageviews(database)
    assert row.title == "Pro plan"
    assert row.referrer == "https://news.example.org/"


async def test_control_characters_in_identifiers_are_400(client: httpx.AsyncClient) -> None:
    response = await post(client, event(session_id="s\u00001"))
    assert response.status_code == 400
    assert error(response)["details"][0]["field"] == "session_id"


# ---------------------------------------------------------------------------- batches


async def test_batch_is_stored_in_order(client: httpx.AsyncClient, database: Database) -> None:
    batch = [
        event(pathname="/a", url="https://example.com/a"),
        event(event_type="_heartbeat"),
        goal("signup"),
        event(visitor_id="v-2", pathname="/b", url="https://example.com/b"),
    ]
    response = await post(client, batch)
    assert response.status_code == 202
    assert response.json() == {"received": 4, "stored": 3}
    assert [p.pathname for p in await pageviews(database)] == ["/a", "/b"]
    assert (await stored(database))["completions"] == 1


async def test_one_invalid_event_rejects_the_whole_batch(
    client: httpx.AsyncClient, database: Database
) -> None:
    batch = [event(), event(visitor_id=None), goal(name="!!"), event(event_type="click")]
    response = await post(client, batch)
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "invalid_request"
    assert [d["field"] for d in body["details"]] == [
        "[1].visitor_id",
        "[2].goal_name",
        "[3].event_type",
    ]
    assert await stored(database) == NOTHING


async def test_host_mismatch_in_a_batch_names_the_event(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await post(client, [event(), event(hostname="evil.test")])
    assert response.status_code == 400
    assert [d["field"] for d in error(response)["details"]] == ["[1].hostname"]
    assert await stored(database) == NOTHING


@pytest.mark.parametrize("size", [0, 101])
async def test_batch_size_is_1_to_100(client: httpx.AsyncClient, size: int) -> None:
    response = await post(client, [event()] * size)
    assert response.status_code == 400
    assert "1 to 100" in error(response)["message"]
    assert response.headers["ratelimit-remaining"] == "99"  # refused whole: costs one


async def test_batch_may_mix_sites(
    client: httpx.AsyncClient, database: Database, site: Site
) -> None:
    await make_site(database, site_id="ds_other", domain="other.org")
    batch = [event(), event(website_id="ds_other", hostname="other.org", url="https://other.org/")]
    assert (await post(client, batch)).status_code == 202
    await visitor(database, "v-1", site_id="ds_other")
    await visitor(database, "v-1", site_id=site.id)


# ---------------------------------------------------------------------------- 4xx


@pytest.mark.parametrize("field", ["website_id", "visitor_id", "session_id", "event_type"])
async def test_missing_required_field_is_400(
    client: httpx.AsyncClient, database: Database, field: str
) -> None:
    response = await post(client, event(**{field: None}))
    assert response.status_code == 400
    body = error(response)
    assert body["details"] == [{"field": field, "message": "is required"}]
    assert response.headers["access-control-allow-origin"] == "*"
    assert await stored(database) == NOTHING


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_type": "click"}, "event_type"),
        ({"visitor_id": ""}, "visitor_id"),
        ({"visitor_id": "x" * 129}, "visitor_id"),
        ({"session_id": 12}, "session_id"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "http://[::1"}, "url"),
        ({"hostname": None, "url": None}, "hostname"),
        ({"referrer": 5}, "referrer"),
        ({"screen_width": "wide"}, "screen_width"),
        ({"metadata": {"a": {"b": 1}}, "event_type": "goal", "goal_name": "x"}, "metadata.a"),
        ({"event_type": "goal"}, "goal_name"),
        ({"event_type": "goal", "goal_name": "-bad"}, "goal_name"),
    ],
)
async def test_invalid_field_is_400(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    body = event(**fields)
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
    response = await post(client, body)
    assert response.status_code == 400
    assert [d["field"] for d in error(response)["details"]] == [field]


@pytest.mark.parametrize("hostname", ["evil.test", "notexample.com", "example.com.evil.test"])
async def test_foreign_hostname_is_400(
    client: httpx.AsyncClient, database: Database, hostname: str
) -> None:
    response = await post(client, event(hostname=hostname))
    assert response.status_code == 400
    assert "example.com" in error(response)["message"]
    assert await stored(database) == NOTHING


async def test_unknown_website_is_404(client: httpx.AsyncClient, database: Database) -> None:
    response = await post(client, event(website_id="ds_nope"))
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"
    assert "ds_nope" in error(response)["message"]
    assert response.headers["access-control-allow-origin"] == "*"
    assert await stored(database) == NOTHING


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_non_json_body_is_415(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        "/api/events", content=json.dumps(event()), headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert error(response)["code"] == "unsupported_media_type"
    assert response.headers["ratelimit-remaining"] == "99"


async def test_body_over_64_kib_is_413(client: httpx.AsyncClient) -> None:
    response = await post(client, event(title="x" * (65 * 1024)))
    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"


@pytest.mark.parametrize("raw", ["{", "[1, 2", '"pageview"', "42", "null", '{"a": 1, "a": 2}'])
async def test_malformed_body_is_400(client: httpx.AsyncClient, raw: str) -> None:
    response = await client.post(
        "/api/events", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


# ---------------------------------------------------------------------------- bots


@pytest.mark.parametrize("user_agent", [GOOGLEBOT, "curl/8.5.0", "python-requests/2.32", ""])
async def test_bots_get_202_and_nothing_is_stored(
    client: httpx.AsyncClient, database: Database, user_agent: str
) -> None:
    response = await post(client, [event(), goal()], **{"user-agent": user_agent})
    assert response.status_code == 202
    assert response.json() == {"received": 2, "stored": 0}
    assert await stored(database) == NOTHING


# ---------------------------------------------------------------------------- CORS


async def test_preflight_allows_any_origin_to_post_json(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/events",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-private-network" not in response.headers


async def test_preflight_answers_private_network_access(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/events",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.headers["access-control-allow-private-network"] == "true"


async def test_cors_is_open_on_this_route_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in response.headers


# ---------------------------------------------------------------------------- rate limit


async def test_the_101st_event_in_a_minute_is_429(client: httpx.AsyncClient) -> None:
    for number in range(1, 101):
        response = await post(client, event(event_type="_heartbeat"))
        assert response.status_code == 202, number
        assert response.headers["ratelimit-remaining"] == str(100 - number)
    response = await post(client, event(event_type="_heartbeat"))
    assert response.status_code == 429
    assert error(response)["code"] == "rate_limited"
    assert response.headers["ratelimit-limit"] == "100"
    assert response.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert int(response.headers["ratelimit-reset"]) <= 60
    assert response.headers["access-control-allow-origin"] == "*"


async def test_a_batch_costs_its_size(client: httpx.AsyncClient, database: Database) -> None:
    first = await post(client, [event(visitor_id=f"v-{n}") for n in range(60)])
    assert first.status_code == 202
    assert first.headers["ratelimit-remaining"] == "40"
    second = await post(client, [event(visitor_id=f"w-{n}") for n in range(41)])
    assert second.status_code == 429
    assert "retry-after" in second.headers
    assert (await stored(database))["visitors"] == 60


async def test_limit_is_per_client_ip_behind_a_trusted_proxy(
    proxied_client: httpx.AsyncClient,
) -> None:
    full = [event(event_type="_heartbeat")] * 100
    one = {"x-forwarded-for": "203.0.113.7"}
    assert (await post(proxied_client, full, **one)).status_code == 202
    assert (await post(proxied_client, event(), **one)).status_code == 429
    other = {"x-forwarded-for": "203.0.113.8"}
    assert (await post(proxied_client, event(), **other)).status_code == 202


async def test_untrusted_forwarded_for_does_not_dodge_the_limit(
    client: httpx.AsyncClient,
) -> None:
    assert (await post(client, [event(event_type="_heartbeat")] * 100)).status_code == 202
    spoofed = await post(client, event(), **{"x-forwarded-for": "203.0.113.9"})
    assert spoofed.status_code == 429


# ---------------------------------------------------------------------------- script


async def test_tracker_script_is_served_cacheable(client: httpx.AsyncClient) -> None:
    response = await client.get("/js/script.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age=86400" in response.headers["cache-control"]
    assert "data-website-id" in response.text
    assert "/api/events" in response.text
    etag = response.headers["etag"]
    again = await client.get("/js/script.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    head = await client.head("/js/script.js")
    assert head.status_code == 200


async def test_openapi_documents_the_events_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/events"]["post"]
    assert {"202", "400", "404", "413", "415", "429"} <= set(operation["responses"])
    assert "application/json" in operation["requestBody"]["content"]
    assert "/js/script.js" in spec["paths"]


@pytest.mark.parametrize("hostname", ["localhost", "localhost:5173", "127.0.0.1", "[::1]:8080"])
async def test_example_domain_sites_accept_local_pages(
    client: httpx.AsyncClient, hostname: str
) -> None:
    # ds_test is on example.com, a domain reserved for examples: the demo site works the same.
    assert (await post(client, event(hostname=hostname))).status_code == 202


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "[::1]"])
async def test_real_sites_reject_local_pages(
    client: httpx.AsyncClient, database: Database, hostname: str
) -> None:
    await make_site(database, site_id="ds_shop", domain="shop.io")
    body = event(website_id="ds_shop", hostname=hostname, url=None)
    response = await post(client, body)
    assert response.status_code == 400
    assert error(response)["details"] == [
        {"field": "hostname", "message": f"'{hostname}' is not shop.io or a subdomain of it"}
    ]


async def _statements_for_batch(client: httpx.AsyncClient, app: Any, size: int, tag: str) -> int:
    from sqlalchemy import event as sa_event

    statements: list[str] = []

    def count(*args: Any) -> None:
        if not BACKGROUND.get():  # the live dispatcher's own polling is not the request's
            statements.append(str(args[2]))

    engine = app.state.database.engine.sync_engine
    body = [event(visitor_id=f"{tag}-{i}", session_id=f"s-{i}") for i in range(size)]
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        response = await post(client, body)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 202, response.text
    assert response.json() == {"received": size, "stored": size}
    return len(statements)


async def test_a_batch_costs_the_same_statements_whatever_its_size(
    client: httpx.AsyncClient, app: Any, database: Database
) -> None:
    # 10 + 90 events: together the client's default budget of 100 events a minute.
    small = await _statements_for_batch(client, app, 10, "small")
    full = await _statements_for_batch(client, app, 90, "full")
    # Set-based: visitor lookup/insert/lookup, first touches, pageviews, slots, bookkeeping.
    assert full == small
    assert full <= 16
    counts = await stored(database)
    assert (counts["visitors"], counts["pageviews"]) == (100, 100)
    assert (await visitor(database, "full-89")).first_pageview_at is not None
