"""Realtime visitors (CONTRACT §14): any event in the last 90 s counts, heartbeats included,
without a heartbeat ever being stored as a pageview; REST and GraphQL say the same.

The count is cached per site for up to a second (many tabs poll it every second), so the test
waits that long between looks."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from datasaas.live.hub import REALTIME_CACHE_SECONDS
from datasaas.resolvers.sites import IssuedKey
from datasaas.storage.engine import Database
from tests.factories import bearer
from tests.tracking.helpers import event, stored

pytestmark = pytest.mark.usefixtures("site")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


async def _realtime(client: httpx.AsyncClient, key: IssuedKey) -> int:
    await asyncio.sleep(REALTIME_CACHE_SECONDS + 0.05)
    rest = await client.get("/api/v1/realtime", params={"site_id": "ds_test"}, headers=bearer(key))
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["meta"] == {"site_id": "ds_test", "window_seconds": 90}
    graphql = await client.post(
        "/graphql",
        json={"query": '{ realtime(siteId: "ds_test") { visitors windowSeconds } }'},
        headers=bearer(key),
    )
    assert graphql.json()["data"]["realtime"] == {
        "visitors": body["results"]["visitors"],
        "windowSeconds": 90,
    }
    visitors: int = body["results"]["visitors"]
    return visitors


async def test_heartbeats_count_as_presence_but_are_not_pageviews(
    client: httpx.AsyncClient, key: IssuedKey, database: Database
) -> None:
    assert await _realtime(client, key) == 0
    headers = {"User-Agent": BROWSER}
    beat = await client.post(
        "/api/events", json=event(visitor_id="a", event_type="_heartbeat"), headers=headers
    )
    assert beat.status_code == 202
    assert beat.json() == {"received": 1, "stored": 0}
    assert await _realtime(client, key) == 1
    assert (await stored(database))["pageviews"] == 0
    views = [event(visitor_id="a"), event(visitor_id="b"), event(visitor_id="b")]
    assert (await client.post("/api/events", json=views, headers=headers)).status_code == 202
    assert await _realtime(client, key) == 2
    assert (await stored(database))["pageviews"] == 3
