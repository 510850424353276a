"""The dashboard's page and bundle: served by the app with no inline script and no off-site URL,
small, licensed, typed against ``schema.graphql`` (a schema change that breaks one of its
documents fails here), its time and money modules unit-tested (``npm test``, Node's runner), and
rebuilt from its sources byte for byte.

The TypeScript checks run where ``frontend/dashboard/node_modules`` exists (``make frontend``,
``.ci/run`` installs it with ``npm ci``); elsewhere they skip with the reason.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from datasaas import demo
from datasaas.dashboard import DASHBOARD_DIR, dashboard_files, dashboard_url
from datasaas.kit.middleware import CONTENT_SECURITY_POLICY
from datasaas.storage.engine import Database

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend" / "dashboard"
NODE_MODULES = FRONTEND / "node_modules"
JS_BUDGET_GZIP = 300 * 1024

needs_node = pytest.mark.skipif(
    shutil.which("npm") is None or not (NODE_MODULES / ".bin" / "graphql-codegen").exists(),
    reason="needs Node and frontend/dashboard/node_modules (cd frontend/dashboard && npm ci)",
)


async def test_the_page_loads_only_its_own_assets_under_the_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-cache"
    for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S):
        assert not body.strip(), "no inline script: the policy is script-src 'self'"
        assert 'src="/static/dashboard/' in attributes
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(source.endswith(".js") for source in sources)
    assert any(source.endswith(".css") for source in sources)
    for source in sources:
        assert source.startswith(("/static/dashboard/", "data:", "/graphql", "/docs")), source
        if source.startswith("/static/"):
            asset = await client.get(source)
            assert asset.status_code == 200, source
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "https://" not in page.text
    assert "http://" not in page.text


def test_the_bundle_is_under_300_kb_compressed_and_names_no_other_host() -> None:
    js = (DASHBOARD_DIR / dashboard_files()["dashboard.js"]).read_bytes()
    assert len(gzip.compress(js, compresslevel=9)) < JS_BUDGET_GZIP
    # Only the SVG namespace (an identifier, never fetched) may look like a URL.
    urls = set(re.findall(rb"https?://[A-Za-z0-9.\-]+", js))
    assert urls <= {b"http://www.w3.org"}, urls


def test_every_bundled_package_has_its_licence_beside_the_bundle() -> None:
    manifest = json.loads((DASHBOARD_DIR / "manifest.json").read_text())
    names = {entry["package"] for entry in manifest["licences"]}
    assert {"uplot", "graphql-ws"} <= names
    notice = (DASHBOARD_DIR / manifest["licenceFile"]).read_text()
    for entry in manifest["licences"]:
        assert f"{entry['package']} {entry['version']} ({entry['license']})" in notice
    assert "MIT License" in notice
    for name in manifest["files"].values():
        assert (DASHBOARD_DIR / name).is_file()


def test_the_printed_link_names_the_dashboard_on_the_bound_address() -> None:
    assert dashboard_url(host="127.0.0.1", port=8000) == "http://127.0.0.1:8000/dashboard"
    assert dashboard_url(host="0.0.0.0", port=9000, key="ds_live_x") == (
        "http://127.0.0.1:9000/dashboard#key=ds_live_x"
    )
    assert dashboard_url(host="::1", port=8000) == "http://[::1]:8000/dashboard"


async def test_the_demo_prints_the_dashboard_link_with_its_read_key(
    database: Database, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEFAULT_VISITORS", 60)
    buffer = io.StringIO()
    console = Console(file=buffer, width=60)  # narrower than the line: it must not wrap
    url = dashboard_url(host="127.0.0.1", port=8000)
    assert await demo.ensure_demo(database, console=console, dashboard_url=url)
    output = buffer.getvalue()
    [read_key] = re.findall(r"read key:\s+(ds_live_\w+)", output)
    assert f"  dashboard:        http://127.0.0.1:8000/dashboard#key={read_key}\n" in output
    # It is the read key: it reads the demo site and may not write.
    document = '{ revenue(siteId: "ds_demo") { visitors } }'
    answer = await client.post(
        "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {read_key}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["revenue"]["visitors"] == 60
    write = await client.post(
        "/api/v1/goals",
        params={"site_id": "ds_demo"},
        json={"name": "signup", "visitor_id": "v1"},
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert write.status_code == 403


def _npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", "run", "--silent", *args],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@needs_node
def test_a_schema_change_that_breaks_a_document_fails_codegen(tmp_path: Path) -> None:
    schema = (ROOT / "schema.graphql").read_text()
    # RevenueSummary loses `mrr`, which the KPI tiles read.
    broken, count = re.subn(r"(type RevenueSummary \{[^}]*?)\n  mrr: Decimal!", r"\1", schema)
    assert count == 1
    (tmp_path / "schema.graphql").write_text(broken)
    schemas = [str(tmp_path / "schema.graphql")]
    pending = FRONTEND / "live.pending.graphql"
    if pending.exists():
        schemas.append(str(pending))
    config = {
        "schema": schemas,
        "documents": [str(FRONTEND / "src" / "operations.graphql")],
        "generates": {
            str(tmp_path / "out.ts"): {"plugins": ["typescript-operations", "typed-document-node"]}
        },
    }
    (tmp_path / "codegen.json").write_text(json.dumps(config))
    codegen = NODE_MODULES / ".bin" / "graphql-codegen"
    result = subprocess.run(
        [str(codegen), "--config", str(tmp_path / "codegen.json")],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "mrr" in result.stdout + result.stderr


@needs_node
def test_the_dashboard_typechecks_passes_its_unit_tests_and_builds_the_committed_bundle(
    tmp_path: Path,
) -> None:
    # One test, in this order: codegen writes src/generated, which the others read.
    typecheck = _npm("typecheck")
    assert typecheck.returncode == 0, typecheck.stdout + typecheck.stderr
    unit = _npm("test")
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert re.search(r"^# fail 0$", unit.stdout, flags=re.M), unit.stdout
    result = subprocess.run(
        ["node", "build.mjs", str(tmp_path)],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rebuilt = json.loads((tmp_path / "manifest.json").read_text())
    committed = json.loads((DASHBOARD_DIR / "manifest.json").read_text())
    assert rebuilt == committed, "run `make frontend` and commit datasaas/static/dashboard"
    for name in committed["files"].values():
        assert (tmp_path / name).read_bytes() == (DASHBOARD_DIR / name).read_bytes(), name
