"""The explorers in a real browser with no internet: GraphiQL runs a typed query, Swagger UI and
ReDoc render the operations; every request off 127.0.0.1 is refused and the pages run under the
strict Content-Security-Policy that production sends.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from datasaas.devserver import clean_env, running_server
from datasaas.kit.middleware import CONTENT_SECURITY_POLICY
from datasaas.storage.engine import Database
from tests.e2e.test_tracker_browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import bearer, make_key, make_site

SITE_ID = "ds_demo"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@dataclass(frozen=True, slots=True)
class Server:
    """A live server with the demo site, one recorded goal and a read & write key."""

    base: str
    key: str


async def _seed(url: str) -> str:
    database = Database(url)
    try:
        await make_site(database, site_id=SITE_ID, domain="demo.example.com", name="Demo")
        return (await make_key(database, site_id=SITE_ID)).secret
    finally:
        await database.dispose()


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[Server]:
    """``uvicorn datasaas.app:create_app --factory`` on a fresh SQLite database."""
    path = tmp_path / "explorers.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    key = asyncio.run(_seed(url))
    with running_server(clean_env({"DATASAAS_DATABASE_URL": url})) as base:
        response = httpx.post(
            f"{base}/api/v1/goals",
            params={"site_id": SITE_ID},
            json={"name": "signup", "visitor_id": "v_browser"},
            headers=bearer(key),
        )
        assert response.status_code == 200, response.text
        yield Server(base=base, key=key)


@pytest.fixture
def browser_page(server: Server) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page that may only reach the server, whose documents carry the production CSP.

    Yields the page, the refused off-site URLs and the script errors and console errors (CSP
    violations included), leaving out HTTP statuses: GraphiQL's first introspection is a 401
    until the key is set.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    refused: list[str] = []
    errors: list[str] = []

    def guard(route: Any) -> None:
        request = route.request
        if urlsplit(request.url).hostname not in {"127.0.0.1", "localhost"}:
            refused.append(request.url)
            route.abort()
        elif request.resource_type == "document":
            # The server sends the production policy itself (datasaas.kit.middleware).
            response = route.fetch()
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            route.fulfill(response=response)
        else:
            route.continue_()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(service_workers="block")
            context.route("**/*", guard)
            page = context.new_page()
            page.on(
                "console",
                lambda message: (
                    errors.append(message.text)
                    if message.type == "error"
                    and not message.text.startswith("Failed to load resource: the server")
                    else None
                ),
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, refused, errors
        finally:
            browser.close()


def _replace_editor_text(page: Any, editor: Any, text: str) -> None:
    """Replace a Monaco editor's content as a user pasting would (no auto-closing brackets)."""
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_graphiql_runs_a_typed_query_offline(
    server: Server, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, refused, errors = browser_page
    page.goto(f"{server.base}/graphql")
    page.wait_for_selector(".graphiql-query-editor .monaco-editor", timeout=30_000)
    # The demo query and the headers template are preloaded.
    assert "query Overview" in page.inner_text(".graphiql-query-editor").replace("\xa0", " ")

    page.get_by_role("button", name="Headers").click()
    _replace_editor_text(
        page,
        page.locator(".graphiql-editor-tool .monaco-editor").last,
        f'{{"Authorization": "Bearer {server.key}"}}',
    )
    _replace_editor_text(
        page,
        page.locator(".graphiql-query-editor .monaco-editor"),
        f'{{ goals(siteId: "{SITE_ID}") {{ name completionCount }} }}',
    )
    # GraphiQL picks the operation name from the edited query after a debounce.
    page.wait_for_timeout(1500)
    page.locator(".graphiql-execute-button").click()
    for _ in range(200):  # the page's own clock: time.sleep would stall the route handler
        response = page.inner_text(".graphiql-response").replace("\xa0", " ")
        if "completionCount" in response:
            break
        page.wait_for_timeout(100)
    assert '"signup"' in response
    assert refused == []
    assert errors == []


def test_swagger_ui_renders_the_operations_offline(
    server: Server, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, refused, errors = browser_page
    page.goto(f"{server.base}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/goals" in [p.replace("\u200b", "") for p in paths]
    assert page.locator(".opblock-post").count() >= 2
    assert refused == []
    assert errors == []


def test_redoc_renders_the_operations_offline(
    server: Server, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, refused, errors = browser_page
    page.goto(f"{server.base}/redoc")
    heading = page.get_by_role("heading", name="Goals with conversion statistics")
    heading.wait_for(timeout=20_000)
    assert refused == []
    assert errors == []
