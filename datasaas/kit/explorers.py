"""The API explorers, served by the app itself: GraphiQL (``/graphql``), Swagger UI (``/docs``)
and ReDoc (``/redoc``), from the bundles ``make assets`` builds into ``datasaas/static/vendor``.

Pages hold no inline script (they run under ``script-src 'self'``): each page's settings travel
in a ``<script type="application/json">`` data block that the page's own bundle reads. Bundles
have content-hashed names, so they are cached for a year; the pages themselves are not cached.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent.parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
STATIC_PATH = "/static"
OPENAPI_URL = "/openapi.json"
IMMUTABLE = "public, max-age=31536000, immutable"
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9.]+$")

router = APIRouter(include_in_schema=False)


class CachedStaticFiles(StaticFiles):
    """Static files with ETags; content-hashed names are cached for good, others revalidated."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file (or 304), with a Cache-Control that suits its name."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        hashed = _HASHED.search(str(full_path)) is not None
        response.headers["Cache-Control"] = IMMUTABLE if hashed else "no-cache"
        return response


@cache
def vendor_files() -> dict[str, str]:
    """Map each logical asset name (``graphiql.js``) to its hashed file name."""
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    files: dict[str, str] = manifest["files"]
    return files


def asset_url(name: str) -> str:
    """The URL of a bundled asset by its logical name."""
    return f"{STATIC_PATH}/vendor/{vendor_files()[name]}"


def _data_block(element_id: str, data: dict[str, Any]) -> str:
    # ``<`` escaped so that no value can close the element or open a comment.
    payload = json.dumps(data).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{payload}</script>'


def _page(*, title: str, css: list[str], scripts: list[str], config: str, body: str) -> str:
    links = "".join(f'\n  <link rel="stylesheet" href="{asset_url(name)}">' for name in css)
    tags = "".join(f'\n  <script defer src="{asset_url(name)}"></script>' for name in scripts)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)}</title>
  <link rel="icon" href="data:,">{links}
  {config}{tags}
</head>
<body>
{body}
</body>
</html>
"""


def _html(content: str) -> HTMLResponse:
    return HTMLResponse(content, headers={"Cache-Control": "no-cache"})


@cache
def graphiql_html(*, endpoint: str, query: str, headers: str) -> str:
    """The GraphiQL page for ``endpoint``, opened on ``query`` with a headers template."""
    workers = {
        "editor": asset_url("editor.worker.js"),
        "json": asset_url("json.worker.js"),
        "graphql": asset_url("graphql.worker.js"),
    }
    config = {"endpoint": endpoint, "query": query, "headers": headers, "workers": workers}
    return _page(
        title="DataSaaS GraphiQL",
        css=["graphiql.css"],
        scripts=["graphiql.js"],
        config=_data_block("graphiql-config", config),
        body='<div id="graphiql" style="height: 100vh">Loading GraphiQL…</div>',
    )


def graphiql_response(*, endpoint: str, query: str, headers: str) -> HTMLResponse:
    """GraphiQL as a response."""
    return _html(graphiql_html(endpoint=endpoint, query=query, headers=headers))


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI on ``/openapi.json``."""
    return _html(
        _page(
            title="DataSaaS API — Swagger UI",
            css=["swagger.css"],
            scripts=["swagger.js"],
            config=_data_block("swagger-config", {"url": OPENAPI_URL}),
            body='<div id="swagger-ui"></div>',
        )
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """ReDoc on ``/openapi.json``."""
    return _html(
        _page(
            title="DataSaaS API — ReDoc",
            css=[],
            scripts=["redoc.js", "redoc-init.js"],
            config=_data_block("redoc-config", {"url": OPENAPI_URL}),
            body='<div id="redoc"></div>',
        )
    )


def static_files() -> CachedStaticFiles:
    """The ASGI app serving ``datasaas/static`` under ``/static``."""
    return CachedStaticFiles(directory=STATIC_DIR)
