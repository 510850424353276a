"""The tracker in a real browser: Debian's Chromium, driven by Playwright, against a live server.

The test page is served by a small static server on another port and host name
(``localhost``) than the API (``127.0.0.1``), so every event is a cross-origin POST that
goes through the CORS preflight, as on a customer's site.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from datasaas.devserver import clean_env, running_server
from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SITE_ID = "ds_e2e"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)

T = TypeVar("T")

PAGE = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>E2E shop</title>
  <script defer src="{api}/js/script.js" data-website-id="{site_id}"></script>
</head>
<body><h1>E2E shop</h1></body>
</html>
"""


@dataclass(frozen=True, slots=True)
class Server:
    """A live API server on a fresh SQLite database, with a site on ``localhost`` and a key."""

    base: str
    database_path: Path
    key: str


async def _seed(url: str) -> str:
    database = Database(url)
    try:
        await make_site(database, site_id=SITE_ID, domain="localhost", name="E2E shop")
        return (await make_key(database, site_id=SITE_ID)).secret
    finally:
        await database.dispose()


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[Server]:
    """Run ``uvicorn datasaas.app:create_app --factory`` as a separate process."""
    path = tmp_path / "e2e.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    key = asyncio.run(_seed(url))
    with running_server(clean_env({"DATASAAS_DATABASE_URL": url})) as base:
        yield Server(base=base, database_path=path, key=key)


@pytest.fixture
def page_origin(server: Server) -> Iterator[str]:
    """A static server answering every path with the test page (like an SPA host)."""
    html = PAGE.format(api=server.base, site_id=SITE_ID).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/favicon.ico":  # a 404 would log a console error
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 15) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored_pageviews(path: Path) -> list[tuple[str, str, str, str | None]]:
    """(visitor uid, session id, pathname, title) of every stored pageview, oldest first."""
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT v.uid, p.session_id, p.pathname, p.title FROM pageview p "
            "JOIN visitor v ON v.id = p.visitor_id ORDER BY p.id"
        ).fetchall()


def test_pageviews_spa_navigation_and_goal_from_a_real_browser(
    server: Server, page_origin: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            failures: list[str] = []
            page.on("requestfailed", lambda request: failures.append(request.url))
            page.on(
                "console",
                lambda message: failures.append(message.text) if message.type == "error" else None,
            )
            page.goto(f"{page_origin}/?utm_source=e2e&utm_medium=test")
            page.wait_for_function("window.datasaas && window.datasaas.visitorId")
            visitor_id = page.evaluate("window.datasaas.visitorId")

            landing = eventually(lambda: stored_pageviews(server.database_path), "the pageview")
            assert [(uid, path, title) for uid, _, path, title in landing] == [
                (visitor_id, "/", "E2E shop")
            ]

            page.evaluate("history.pushState({}, '', '/pricing')")
            both = eventually(
                lambda: (rows := stored_pageviews(server.database_path))[1:] and rows,
                "the SPA navigation",
            )
            assert [path for _, _, path, _ in both] == ["/", "/pricing"]
            assert len({session for _, session, _, _ in both}) == 1

            page.evaluate("window.datasaas('signup', {plan: 'pro'})")

            def completions() -> list[dict[str, Any]]:
                response = httpx.get(
                    f"{server.base}/api/v1/goals/signup/completions",
                    params={"site_id": SITE_ID},
                    headers=bearer(server.key),
                )
                assert response.status_code == 200, response.text
                results: list[dict[str, Any]] = response.json()["results"]
                return results

            [completion] = eventually(completions, "the signup goal")
            assert failures == []
        finally:
            browser.close()

    assert completion["visitor_id"] == visitor_id
    assert completion["browser"] == "Chrome"
    assert completion["device_type"] == "desktop"
    assert completion["os"] == "Linux"
    assert completion["source"] == "e2e"
    assert (completion["country"], completion["city"]) == (None, None)  # no GeoIP database
