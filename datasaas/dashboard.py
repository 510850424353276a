"""The dashboard page (``GET /dashboard``), served from the bundle ``make frontend`` builds into
``datasaas/static/dashboard`` (committed, so serving needs no Node).

The page is a shell: its own bundle reads the key from the ``#key=`` fragment (never sent here)
or the page's form, and draws every number from the public GraphQL API, like any customer's
frontend. No inline script, so it runs under the app's ``script-src 'self'``.
"""

from __future__ import annotations

import json
from functools import cache

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from datasaas.kit.explorers import STATIC_DIR, STATIC_PATH

DASHBOARD_DIR = STATIC_DIR / "dashboard"
DASHBOARD_PATH = "/dashboard"

router = APIRouter(include_in_schema=False)


@cache
def dashboard_files() -> dict[str, str]:
    """Map the bundle's logical names (``dashboard.js``, ``dashboard.css``) to hashed files."""
    manifest = json.loads((DASHBOARD_DIR / "manifest.json").read_text())
    files: dict[str, str] = manifest["files"]
    return files


def dashboard_url(*, host: str, port: int, key: str | None = None) -> str:
    """The dashboard's address on a server bound to ``host``, opening with ``key`` when given."""
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}{DASHBOARD_PATH}"
    return f"{url}#key={key}" if key else url


@cache
def dashboard_html() -> str:
    """The page: the bundle's stylesheet and module script, and a container for it to fill."""
    files = dashboard_files()
    base = f"{STATIC_PATH}/dashboard"
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>DataSaaS dashboard</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{base}/{files["dashboard.css"]}">
  <script type="module" src="{base}/{files["dashboard.js"]}"></script>
</head>
<body data-state="loading">
  <div id="dashboard"><p class="muted">Loading the dashboard…</p></div>
  <noscript>The dashboard needs JavaScript. The same numbers are in the GraphQL API at
  <a href="/graphql">/graphql</a> and the REST API documented at
  <a href="/docs">/docs</a>.</noscript>
</body>
</html>
"""


@router.get(DASHBOARD_PATH)
async def dashboard() -> HTMLResponse:
    """The dashboard page (not cached: it names the current bundle)."""
    return HTMLResponse(dashboard_html(), headers={"Cache-Control": "no-cache"})
