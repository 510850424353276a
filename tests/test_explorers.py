"""The explorers' pages and assets: served by the app, no inline script, no off-site URL,
content-hashed files cached for good and revalidated by ETag."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from datasaas.kit.explorers import VENDOR_DIR, vendor_files
from datasaas.schema.router import DEFAULT_HEADERS, EXAMPLE_QUERY

PAGES = [("/graphql", "graphiql-config"), ("/docs", "swagger-config"), ("/redoc", "redoc-config")]


def _config(html: str, element_id: str) -> dict[str, object]:
    match = re.search(f'<script type="application/json" id="{element_id}">(.*?)</script>', html)
    assert match, html
    config: dict[str, object] = json.loads(match.group(1))
    return config


@pytest.mark.parametrize(("path", "config_id"), PAGES)
async def test_pages_load_only_local_scripts_and_no_inline_code(
    client: httpx.AsyncClient, path: str, config_id: str
) -> None:
    page = await client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    for attributes, body in scripts:
        # Either a JSON data block, or an external script from /static: nothing to `eval`.
        assert 'type="application/json"' in attributes or (not body and "src=" in attributes)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    for source in sources:
        assert source.startswith(("/static/vendor/", "data:")), source
        if source.startswith("/static/"):
            assert (await client.get(source)).status_code == 200, source
    assert "http://" not in page.text
    assert "https://" not in page.text
    _config(page.text, config_id)


async def test_graphiql_opens_on_the_demo_query_and_a_headers_template(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    config = _config(page.text, "graphiql-config")
    assert config["query"] == EXAMPLE_QUERY
    assert 'revenueTimeseries(siteId: "ds_demo"' in str(config["query"])
    assert config["headers"] == DEFAULT_HEADERS == '{"Authorization": "Bearer ds_live_..."}'
    assert config["endpoint"] == "/graphql"
    workers = config["workers"]
    assert isinstance(workers, dict)
    assert set(workers) == {"editor", "json", "graphql"}


async def test_hashed_assets_are_cached_for_good_and_revalidate(
    client: httpx.AsyncClient,
) -> None:
    url = f"/static/vendor/{vendor_files()['graphiql.js']}"
    first = await client.get(url)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    again = await client.get(url, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    manifest = await client.get("/static/vendor/manifest.json")
    assert manifest.headers["cache-control"] == "no-cache"


def test_every_bundled_package_has_its_licence_beside_the_bundles() -> None:
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    names = {entry["package"] for entry in manifest["licences"]}
    expected = {"graphiql", "react", "react-dom", "graphql", "graphql-ws", "swagger-ui-dist"}
    assert expected | {"redoc", "monaco-editor"} <= names
    for entry in manifest["licences"]:
        assert (VENDOR_DIR / entry["file"]).stat().st_size > 0
    for name in manifest["files"].values():
        assert (VENDOR_DIR / name).is_file()


def test_the_graphiql_bundle_stays_a_sensible_size() -> None:
    sizes = {name: (VENDOR_DIR / file).stat().st_size for name, file in vendor_files().items()}
    # GraphiQL 5 with Monaco is ~5 MB minified (~1.4 MB gzip); more means something got dragged in.
    assert sizes["graphiql.js"] < 7_000_000
    assert sizes["swagger.js"] < 2_500_000
