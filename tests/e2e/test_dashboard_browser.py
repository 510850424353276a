"""The dashboard in a real browser (Debian's Chromium, Playwright) against a real uvicorn with the
demo data, the way ``make run`` serves it: no request may leave 127.0.0.1, every number on the
page equals the GraphQL API's answer for the same range and time zone (asked here directly, and
formatted as en-US people read them), a click on a source filters the page, a payment posted
through REST reaches the live feed within 2 s, a revoked key shows the error state.

Screenshots (1400 x 900 and 390 x 844, light and dark) and the measured times go to
``.artifacts/dashboard/`` (gitignored), or ``$DATASAAS_ARTIFACTS/dashboard``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console

from datasaas import demo
from datasaas.devserver import clean_env, running_server
from datasaas.kit.middleware import CONTENT_SECURITY_POLICY
from datasaas.storage.engine import Database
from tests.e2e.test_tracker_browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import bearer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DATASAAS_ARTIFACTS", ROOT / ".artifacts")) / "dashboard"
SITE_ID = demo.DEMO_SITE_ID
TIME_ZONE = "America/New_York"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)

# The test's own document: the API's answer, independent of the dashboard's documents.
NUMBERS = """
query Numbers($site: String!, $start: String!, $end: String!, $previousStart: String!,
              $previousEnd: String!, $tz: String!, $filters: [FilterInput!]!,
              $granularity: Granularity!) {
  current: revenue(siteId: $site, start: $start, end: $end, timezone: $tz, filters: $filters) {
    visitors totalRevenue mrr conversionRate
  }
  previous: revenue(siteId: $site, start: $previousStart, end: $previousEnd, timezone: $tz,
                    filters: $filters) {
    visitors totalRevenue mrr conversionRate
  }
  series: revenueTimeseries(siteId: $site, start: $start, end: $end, timezone: $tz,
                            filters: $filters, granularity: $granularity) {
    period newRevenue refundRevenue
  }
  goals(siteId: $site, start: $start, end: $end, timezone: $tz, filters: $filters) {
    name uniqueVisitors completionCount conversionRate
  }
  source: revenueBreakdown(siteId: $site, dimension: SOURCE, start: $start, end: $end,
                           timezone: $tz, filters: $filters, limit: 10) {
    value visitors totalRevenue conversionRate
  }
  country: revenueBreakdown(siteId: $site, dimension: COUNTRY, start: $start, end: $end,
                            timezone: $tz, filters: $filters, limit: 10) {
    value visitors totalRevenue conversionRate
  }
  device_type: revenueBreakdown(siteId: $site, dimension: DEVICE_TYPE, start: $start,
                                end: $end, timezone: $tz, filters: $filters, limit: 10) {
    value visitors totalRevenue conversionRate
  }
  payments(siteId: $site, start: $start, end: $end, timezone: $tz, filters: $filters,
           first: 10) {
    totalCount edges { node { transactionId reportingAmount paymentType } }
  }
}
"""
NONE_LABELS = {"source": "Direct / none", "country": "Unknown", "device_type": "Unknown"}


# ------------------------------------------------------------------ formatting, as en-US reads it


def count(value: int) -> str:
    """1,991"""
    return f"{value:,}"


def money(value: str) -> str:
    """$4,737.04, with exactly the decimals the API sent."""
    decimals = len(value.partition(".")[2])
    amount = Decimal(value)
    text = f"${abs(amount):,.{decimals}f}"
    return f"-{text}" if amount < 0 else text


def rate(value: float) -> str:
    """3.97% (the API's 4-decimal fraction, exactly)."""
    return f"{Decimal(repr(value)) * 100:.2f}%"


def _signed(number: Decimal) -> str:
    text = f"{abs(number):,}"
    return f"+{text}" if number > 0 else f"-{text}" if number < 0 else text


def relative_change(current: float, previous: float) -> str:
    """+12% (half away from zero, on the double's shortest decimal, as ICU rounds)."""
    if previous == 0:
        return "0%" if current == 0 else "new"
    ratio = (current - previous) / abs(previous)
    percent = Decimal(repr(ratio)).scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{_signed(percent)}%"


def point_change(current: float, previous: float) -> str:
    """+2.03 pp"""
    points = Decimal(repr((current - previous) * 100)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    return f"{_signed(points)} pp"


# ------------------------------------------------------------------ server


@dataclass(frozen=True, slots=True)
class Demo:
    """A demo database (``serve --demo``'s) and the keys its run printed."""

    path: Path
    read_key: str
    write_key: str
    printed_link: str


@dataclass(frozen=True, slots=True)
class Server:
    """A live server on a copy of the demo database."""

    base: str
    url: str
    demo: Demo

    def graphql(self, document: str, variables: dict[str, Any], key: str | None = None) -> Any:
        """The API's answer to ``document``."""
        response = httpx.post(
            f"{self.base}/graphql",
            json={"query": document, "variables": variables},
            headers=bearer(key or self.demo.read_key),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]


async def _make_demo(url: str) -> str:
    database = Database(url)
    try:
        buffer = io.StringIO()
        await demo.ensure_demo(
            database, console=Console(file=buffer, width=200), dashboard_url="DASHBOARD"
        )
        return buffer.getvalue()
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def demo_database(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo site as ``make run`` creates it (2,000 visitors over 30 days ending now)."""
    path = tmp_path_factory.mktemp("dashboard") / "demo.db"
    shutil.copyfile(sqlite_template, path)
    output = asyncio.run(_make_demo(f"sqlite+aiosqlite:///{path}"))
    [read_key] = re.findall(r"read key:\s+(ds_live_\w+)", output)
    [write_key] = re.findall(r"read & write key:\s+(ds_live_\w+)", output)
    [link] = re.findall(r"dashboard:\s+(\S+)", output)
    return Demo(path=path, read_key=read_key, write_key=write_key, printed_link=link)


@pytest.fixture
def server(demo_database: Demo, tmp_path: Path) -> Iterator[Server]:
    """``uvicorn datasaas.app:create_app --factory`` on a fresh copy of the demo database."""
    path = tmp_path / "demo.db"
    shutil.copyfile(demo_database.path, path)
    url = f"sqlite+aiosqlite:///{path}"
    with running_server(clean_env({"DATASAAS_DATABASE_URL": url})) as base:
        yield Server(base=base, url=url, demo=demo_database)


@dataclass
class Browser:
    """A Chromium that may reach only 127.0.0.1, with what it refused and what went wrong."""

    browser: Any
    refused: list[str]
    errors: list[str]

    def page(self, *, width: int = 1400, height: int = 900, dark: bool = False) -> Any:
        """A new en-US page in New York time whose documents carry the production CSP."""
        context = self.browser.new_context(
            viewport={"width": width, "height": height},
            locale="en-US",
            timezone_id=TIME_ZONE,
            color_scheme="dark" if dark else "light",
            service_workers="block",
        )
        context.route("**/*", self._guard)
        page = context.new_page()
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", self._check_policy)
        return page

    def _guard(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            self.refused.append(route.request.url)
            route.abort()
        else:
            # Passed on untouched: a fulfilled document would lose its local address space and
            # Chromium's Local Network Access checks would then block the page's WebSocket.
            route.continue_()

    def _check_policy(self, response: Any) -> None:
        if response.request.resource_type == "document":
            policy = response.headers.get("content-security-policy")
            if policy != CONTENT_SECURITY_POLICY:
                self.errors.append(f"{response.url} has the policy {policy!r}")


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield Browser(browser=browser, refused=[], errors=[])
        finally:
            browser.close()


# ------------------------------------------------------------------ reading the page


def wait_ready(page: Any) -> None:
    """Wait until the numbers are painted (the page sets ``data-state`` on ``<body>``)."""
    page.wait_for_selector("body[data-state=ready]", timeout=20_000)


def page_range(page: Any) -> dict[str, str]:
    """The range and time zone the page asked the API for (``<main data-*>``)."""
    data: dict[str, str] = page.eval_on_selector("main", "main => ({...main.dataset})")
    return data


def api_numbers(server: Server, page: Any, filters: list[dict[str, Any]]) -> Any:
    """The API's answer for the page's range, time zone and ``filters``."""
    shown = page_range(page)
    return server.graphql(
        NUMBERS,
        {
            "site": SITE_ID,
            "start": shown["start"],
            "end": shown["end"],
            "previousStart": shown["previousStart"],
            "previousEnd": shown["previousEnd"],
            "tz": shown["timezone"],
            "filters": filters,
            "granularity": shown["granularity"],
        },
    )


def kpis(page: Any) -> dict[str, tuple[str, str, str]]:
    """(value, change, previous) of every KPI tile, by its id."""
    tiles: dict[str, tuple[str, str, str]] = {}
    for tile in page.query_selector_all("[data-kpi]"):
        tiles[tile.get_attribute("data-kpi")] = (
            tile.query_selector(".kpi-value").inner_text(),
            tile.query_selector(".change-text").inner_text(),
            tile.query_selector(".kpi-previous").inner_text(),
        )
    return tiles


def expected_kpis(numbers: Any) -> dict[str, tuple[str, str, str]]:
    """The KPI tiles the API's answer calls for."""
    current, previous = numbers["current"], numbers["previous"]
    amounts = {"total-revenue": "totalRevenue", "mrr": "mrr"}
    tiles = {
        "visitors": (
            count(current["visitors"]),
            relative_change(current["visitors"], previous["visitors"]),
            f"from {count(previous['visitors'])}",
        ),
        "conversion": (
            rate(current["conversionRate"]),
            point_change(current["conversionRate"], previous["conversionRate"]),
            f"from {rate(previous['conversionRate'])}",
        ),
    }
    for tile, field in amounts.items():
        tiles[tile] = (
            money(current[field]),
            relative_change(float(current[field]), float(previous[field])),
            f"from {money(previous[field])}",
        )
    return tiles


def table_rows(page: Any, selector: str) -> list[list[str]]:
    """The text of every cell (header cell included) of each row matched by ``selector``."""
    rows: list[list[str]] = page.eval_on_selector_all(
        selector,
        "rows => rows.map(row => [...row.children].map(cell => cell.textContent.trim()))",
    )
    return rows


def assert_page_matches_api(page: Any, numbers: Any) -> None:
    """Every KPI, series bucket, goal row, breakdown row and ledger row equals the API's."""
    assert kpis(page) == expected_kpis(numbers)
    assert table_rows(page, "#goals tbody tr") == [
        [
            goal["name"],
            count(goal["uniqueVisitors"]),
            count(goal["completionCount"]),
            rate(goal["conversionRate"]),
        ]
        for goal in numbers["goals"]
    ]
    for dimension in ("source", "country", "device_type"):
        assert table_rows(page, f"#breakdown-{dimension} tbody tr") == [
            [
                row["value"] if row["value"] is not None else NONE_LABELS[dimension],
                count(row["visitors"]),
                money(row["totalRevenue"]),
                rate(row["conversionRate"]),
            ]
            for row in numbers[dimension]
        ], dimension
    assert [row[1:] for row in table_rows(page, ".series-table tbody tr")] == [
        [money(point["newRevenue"]), money(point["refundRevenue"])] for point in numbers["series"]
    ]
    ledger = page.eval_on_selector_all(
        "#payments tbody tr", "rows => rows.map(row => row.dataset.transaction)"
    )
    assert ledger == [edge["node"]["transactionId"] for edge in numbers["payments"]["edges"]]
    total = numbers["payments"]["totalCount"]
    expected = f"1\N{EN DASH}{min(10, total)} of {count(total)}" if total else "No payments"
    assert page.inner_text("#payments-range") == expected


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def record(name: str, value: object) -> None:
    """Keep a measured number beside the screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "measurements.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2) + "\n")


def ready_ms(page: Any) -> float:
    """Milliseconds from navigation start until the numbers were painted and interactive."""
    marks: list[float] = page.evaluate(
        "performance.getEntriesByName('dashboard-ready').map(mark => mark.startTime)"
    )
    assert len(marks) == 1
    return marks[0]


# ------------------------------------------------------------------ tests


def test_the_printed_link_opens_the_demo_with_every_number_equal_to_the_api(
    server: Server, chromium: Browser
) -> None:
    assert server.demo.printed_link == f"DASHBOARD#key={server.demo.read_key}"
    page = chromium.page()
    page.goto(f"{server.base}/dashboard#key={server.demo.read_key}")
    wait_ready(page)
    cold = ready_ms(page)

    # The key left the address bar at once; the view's state is in the query.
    address = urlsplit(page.url)
    assert address.fragment == ""
    assert server.demo.read_key not in page.url
    assert parse_qs(address.query) == {"site": [SITE_ID], "range": ["30d"], "tz": [TIME_ZONE]}

    # It opens on the last 30 days in the browser's time zone, compared with the 30 before.
    shown = page_range(page)
    today = datetime.now(ZoneInfo(TIME_ZONE)).date()
    assert shown["timezone"] == TIME_ZONE
    assert shown["start"] == (today - timedelta(days=29)).isoformat()
    assert shown["end"].startswith(today.isoformat() + "T")
    assert shown["previousStart"] == (today - timedelta(days=59)).isoformat()
    assert shown["granularity"] == "DAY"

    numbers = api_numbers(server, page, [])
    assert numbers["current"]["visitors"] > 1000  # a month of demo traffic, not an empty page
    assert_page_matches_api(page, numbers)
    assert len(page.query_selector_all("#breakdown-source tbody tr")) == 10
    # The chart is a figure labelled by a summary, with the same numbers as a table.
    assert page.get_attribute("figure.chart", "aria-labelledby") == "chart-summary"
    assert "Revenue per day" in page.inner_text("#chart-summary")
    screenshot(page, "dashboard-1400x900.png")

    # Warm (as on a second visit): under a second to interactive on this machine.
    page.reload()
    wait_ready(page)
    warm = ready_ms(page)
    record("time_to_interactive_ms", {"cold": round(cold), "warm": round(warm)})
    assert warm < 1000, warm

    mobile = chromium.page(width=390, height=844)
    mobile.goto(f"{server.base}/dashboard?site={SITE_ID}#key={server.demo.read_key}")
    wait_ready(mobile)
    assert_page_matches_api(mobile, api_numbers(server, mobile, []))
    screenshot(mobile, "dashboard-390x844.png")

    dark = chromium.page(dark=True)
    dark.goto(f"{server.base}/dashboard#key={server.demo.read_key}")
    wait_ready(dark)
    assert dark.evaluate("document.documentElement.dataset.theme") == "dark"
    screenshot(dark, "dashboard-1400x900-dark.png")

    assert chromium.refused == []
    assert chromium.errors == []


def test_a_range_and_time_zone_from_the_url_give_the_apis_numbers_for_them(
    server: Server, chromium: Browser
) -> None:
    page = chromium.page()
    page.goto(f"{server.base}/dashboard?range=7d&tz=Asia/Kolkata#key={server.demo.read_key}")
    wait_ready(page)
    shown = page_range(page)
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    assert shown["timezone"] == "Asia/Kolkata"
    assert shown["start"] == (today - timedelta(days=6)).isoformat()
    assert_page_matches_api(page, api_numbers(server, page, []))

    # The keyboard reaches everything: the skip link first, then the range presets.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the numbers"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.preset") == "today":
            break
    # Today is hourly; the choice is kept in the URL; a custom range is whole days.
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('main').dataset.granularity === 'HOUR'")
    wait_ready(page)
    assert page.get_attribute("[data-preset=today]", "aria-pressed") == "true"
    assert page_range(page)["granularity"] == "HOUR"
    assert parse_qs(urlsplit(page.url).query)["range"] == ["today"]
    assert_page_matches_api(page, api_numbers(server, page, []))

    page.get_by_role("button", name="Custom").click()
    start, end = (today - timedelta(days=20)).isoformat(), (today - timedelta(days=14)).isoformat()
    page.get_by_label("From", exact=True).fill(start)
    page.get_by_label("To", exact=True).fill(end)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function(
        "([start]) => document.querySelector('main').dataset.start === start", arg=[start]
    )
    wait_ready(page)
    assert (page_range(page)["start"], page_range(page)["end"]) == (start, end)
    assert_page_matches_api(page, api_numbers(server, page, []))

    page.select_option("#timezone", "UTC")
    page.wait_for_function("document.querySelector('main').dataset.timezone === 'UTC'")
    wait_ready(page)
    assert_page_matches_api(page, api_numbers(server, page, []))
    assert chromium.refused == []


def test_clicking_a_source_filters_the_whole_page_until_its_chip_is_removed(
    server: Server, chromium: Browser
) -> None:
    page = chromium.page()
    page.goto(f"{server.base}/dashboard#key={server.demo.read_key}")
    wait_ready(page)
    unfiltered = api_numbers(server, page, [])
    source = next(row["value"] for row in unfiltered["source"] if row["value"] is not None)

    page.get_by_role("button", name=f"Filter by source: {source}").click()
    page.wait_for_selector("[data-filter=source]")
    wait_ready(page)
    assert page.inner_text("[data-filter=source]") == f"Source is {source}"
    assert parse_qs(urlsplit(page.url).query)["source"] == [source]
    filters = [{"dimension": "SOURCE", "operator": "IS", "values": [source]}]
    filtered = api_numbers(server, page, filters)
    assert filtered["current"]["visitors"] < unfiltered["current"]["visitors"]
    assert_page_matches_api(page, filtered)

    # A country from the keyboard: both filters hold (AND), each with its chip.
    country = next(row["value"] for row in filtered["country"] if row["value"] is not None)
    page.get_by_role("button", name=f"Filter by country: {country}").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-filter=country]")
    wait_ready(page)
    both = [*filters, {"dimension": "COUNTRY", "operator": "IS", "values": [country]}]
    assert_page_matches_api(page, api_numbers(server, page, both))

    # A shared link reproduces the view.
    shared = chromium.page()
    shared.goto(f"{page.url}#key={server.demo.read_key}")
    wait_ready(shared)
    assert kpis(shared) == kpis(page)
    assert shared.inner_text("#filters") == page.inner_text("#filters")

    page.get_by_role("button", name=f"Remove filter: Source is {source}").click()
    page.wait_for_selector("[data-filter=source]", state="detached")
    wait_ready(page)
    assert "source" not in parse_qs(urlsplit(page.url).query)
    assert_page_matches_api(page, api_numbers(server, page, both[1:]))
    page.get_by_role("button", name=f"Remove filter: Country is {country}").click()
    page.wait_for_selector("[data-filter]", state="detached")
    wait_ready(page)
    assert_page_matches_api(page, api_numbers(server, page, []))

    # Direct traffic (no source) is a filter on "no value".
    page.get_by_role("button", name="Filter by source: Direct / none").click()
    page.wait_for_selector("[data-filter=source]")
    wait_ready(page)
    assert page.inner_text("[data-filter=source]") == "Source is Direct / none"
    direct = [{"dimension": "SOURCE", "operator": "IS", "values": [None]}]
    assert_page_matches_api(page, api_numbers(server, page, direct))
    assert chromium.refused == []


def test_a_payment_posted_through_rest_reaches_the_live_feed_within_two_seconds(
    server: Server, chromium: Browser
) -> None:
    page = chromium.page()
    page.goto(f"{server.base}/dashboard#key={server.demo.read_key}")
    wait_ready(page)
    page.wait_for_selector(".live-status[data-status=live]", timeout=10_000)
    # Subscriptions are started once the socket is up; give the server a moment to register them.
    page.wait_for_timeout(300)

    posted = time.monotonic()
    response = httpx.post(
        f"{server.base}/api/v1/payments",
        params={"site_id": SITE_ID},
        json={
            "visitor_id": "v_live_feed",
            "amount": 1234.5,
            "currency": "USD",
            "transaction_id": "txn_live_feed",
            "payment_type": "one_time",
            "product_name": "Lifetime",
        },
        headers=bearer(server.demo.write_key),
    )
    assert response.status_code == 200, response.text
    page.wait_for_selector("#live-feed [data-id=txn_live_feed]", timeout=2_000)
    arrived = time.monotonic() - posted
    record("live_feed_payment_s", round(arrived, 3))
    assert arrived < 2
    item = page.inner_text("#live-feed [data-id=txn_live_feed]")
    assert "$1,234.50 Lifetime" in item
    assert page.get_by_role("button", name="Update the numbers").is_visible()

    completion = httpx.post(
        f"{server.base}/api/v1/goals",
        params={"site_id": SITE_ID},
        json={"name": "signup", "visitor_id": "v_live_feed"},
        headers=bearer(server.demo.write_key),
    )
    assert completion.status_code == 200, completion.text
    page.wait_for_selector("#live-feed [data-kind=goal]", timeout=2_000)
    assert "signup" in page.inner_text("#live-feed [data-kind=goal]")

    # The realtime count follows the subscription: the visitor who just paid is active now.
    # (The server computes the count at most once a second, so both sides are polled.)
    realtime = "query ($site: String!) { realtime(siteId: $site) { visitors } }"
    deadline = time.monotonic() + 5
    while True:
        visitors = server.graphql(realtime, {"site": SITE_ID})["realtime"]["visitors"]
        shown = page.inner_text("#realtime-visitors")
        if (visitors >= 1 and shown == count(visitors)) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    assert visitors >= 1
    assert shown == count(visitors)

    # The numbers follow on request, and still equal the API's.
    page.get_by_role("button", name="Update the numbers").click()
    wait_ready(page)
    assert_page_matches_api(page, api_numbers(server, page, []))
    # The new payment now heads the ledger.
    first_row = page.get_attribute("#payments tbody tr", "data-transaction")
    assert first_row == "txn_live_feed", (first_row, page_range(page))
    screenshot(page, "dashboard-live-feed.png")
    assert chromium.refused == []
    assert chromium.errors == []


def cli(server: Server, *args: str) -> Any:
    """Run ``datasaas ARGS --json --database-url`` on the server's database; its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "datasaas", *args, "--json", "--database-url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_a_revoked_key_or_another_sites_key_shows_a_clear_error_not_a_blank_page(
    server: Server, chromium: Browser
) -> None:
    page = chromium.page()
    page.goto(f"{server.base}/dashboard#key={server.demo.read_key}")
    wait_ready(page)

    [read] = [k for k in cli(server, "keys", "list", "--site", SITE_ID) if k["scope"] == "read"]
    assert server.demo.read_key.startswith(read["prefix"])
    revoke = ["keys", "revoke", read["id"], "--database-url", server.url]
    subprocess.run(
        [sys.executable, "-m", "datasaas", *revoke],
        capture_output=True,
        timeout=60,
        check=True,
    )
    page.reload()  # the key is still in this tab's sessionStorage
    page.wait_for_selector("body[data-state=error-401]", timeout=10_000)
    alert = page.get_by_role("alert")
    assert "not accepted" in alert.inner_text()
    assert "revoked" in alert.inner_text()
    assert page.query_selector("[data-kpi]") is None
    screenshot(page, "dashboard-revoked-key.png")

    # The form takes another key; a key of another site is a 403, said as such.
    cli(server, "sites", "create", "--name", "Other", "--domain", "other.example", "--id", "ds_x")
    other = cli(server, "keys", "create", "--site", "ds_x", "--scope", "read")["key"]
    page.fill("#key-secret", other)
    page.get_by_role("button", name="Open dashboard").click()
    page.wait_for_selector("body[data-state=error-403]", timeout=10_000)
    assert f"does not give access to the site {SITE_ID}" in page.get_by_role("alert").inner_text()

    # And the demo's read & write key opens it again.
    page.fill("#key-secret", server.demo.write_key)
    page.get_by_role("button", name="Open dashboard").click()
    wait_ready(page)
    assert page.query_selector("[data-kpi=visitors]") is not None
    assert chromium.refused == []
