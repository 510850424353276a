"""What a client on another origin or with a generated client sees: 405 with the full ``Allow``,
CORS on the API doors only, empty optional query values as absent, and an OpenAPI document whose
money fields are numbers for ``openapi-typescript``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from datasaas.app import create_app
from datasaas.config import Settings
from datasaas.resolvers.sites import IssuedKey
from tests.factories import bearer

SITE = "ds_test"
ALLOWED = "https://app.example.com"
REPO = Path(__file__).resolve().parents[2]
OPENAPI_TYPESCRIPT = (
    REPO / "frontend" / "explorers" / "node_modules" / ".bin" / "openapi-typescript"
)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/goals", "GET, POST"),
        ("DELETE", "/api/v1/goals", "GET, POST"),
        ("PUT", "/api/v1/payments", "GET, POST"),
        ("PUT", "/api/v1/payments/txn_1", "DELETE"),
        ("POST", "/api/v1/revenue", "GET"),
        ("PUT", "/graphql", "GET, POST"),
        ("DELETE", "/healthz", "GET"),
    ],
)
async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    body = response.json()
    if path == "/graphql":
        assert body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    else:
        assert body["error"]["code"] == "method_not_allowed"
        assert allow in body["error"]["message"]


async def test_an_empty_optional_query_value_counts_as_absent(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    empty = await client.get(
        "/api/v1/revenue/timeseries?site_id=ds_test&start=&end=&timezone=&granularity=",
        headers=bearer(key),
    )
    absent = await client.get("/api/v1/revenue/timeseries?site_id=ds_test", headers=bearer(key))
    assert empty.status_code == 200, empty.text
    assert empty.json()["meta"]["granularity"] == "day"
    assert empty.json()["meta"]["timezone"] == "UTC"
    assert len(empty.json()["results"]) == len(absent.json()["results"])
    goals = await client.get("/api/v1/goals?site_id=ds_test&limit=&offset=", headers=bearer(key))
    assert goals.status_code == 200, goals.text
    assert goals.json()["meta"]["limit"] == 100
    missing_site = await client.get("/api/v1/goals?site_id=", headers=bearer(key))
    assert missing_site.status_code == 400


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that lets ``ALLOWED`` call the API from a browser."""
    app: FastAPI = create_app(settings.model_copy(update={"cors_origins": f"{ALLOWED}/"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.mark.parametrize("path", ["/api/v1/revenue?site_id=ds_test", "/graphql"])
async def test_cors_preflight_is_answered_for_an_allowed_origin(
    cors_client: httpx.AsyncClient, path: str
) -> None:
    response = await cors_client.options(
        path,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST" if path == "/graphql" else "GET",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_allows_the_origin_and_exposes_the_rate_limit(
    cors_client: httpx.AsyncClient, key: IssuedKey
) -> None:
    response = await cors_client.get(
        "/api/v1/revenue", params={"site_id": SITE}, headers={"Origin": ALLOWED, **bearer(key)}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "RateLimit-Remaining" in response.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_refuses_other_origins(cors_client: httpx.AsyncClient, key: IssuedKey) -> None:
    preflight = await cors_client.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await cors_client.get(
        "/api/v1/revenue",
        params={"site_id": SITE},
        headers={"Origin": "https://evil.example", **bearer(key)},
    )
    assert "access-control-allow-origin" not in simple.headers


async def test_without_configured_origins_there_is_no_cors(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    response = await client.get(
        "/api/v1/revenue", params={"site_id": SITE}, headers={"Origin": ALLOWED, **bearer(key)}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_events_keep_their_own_open_cors(cors_client: httpx.AsyncClient) -> None:
    preflight = await cors_client.options(
        "/api/events",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_openapi_money_is_number_and_enums_are_enums(app: FastAPI) -> None:
    schema = app.openapi()
    components = schema["components"]["schemas"]
    for model, fields in (
        ("RevenueItem", ("total_revenue", "mrr")),
        ("RevenuePointItem", ("new_revenue", "refund_revenue")),
    ):
        for name in fields:
            assert components[model]["properties"][name]["type"] == "number"
    series = schema["paths"]["/api/v1/revenue/timeseries"]["get"]
    granularity = next(p for p in series["parameters"] if p["name"] == "granularity")
    assert granularity["schema"]["enum"] == ["hour", "day", "week", "month"]
    for path, item in schema["paths"].items():
        if path.startswith("/api/v1/") or path == "/graphql":
            for operation in item.values():
                assert {"401", "429", "503"} <= set(operation["responses"]), (path, operation)
    graphql = schema["paths"]["/graphql"]
    assert "text/html" in graphql["get"]["responses"]["200"]["content"]
    assert {"200", "400", "401", "403", "413", "429", "503"} == set(graphql["post"]["responses"])


@pytest.mark.skipif(
    shutil.which("node") is None or not OPENAPI_TYPESCRIPT.exists(),
    reason="needs Node and `npm ci` in frontend/explorers (CI runs it)",
)
def test_a_generated_typescript_client_types_money_as_numbers(app: FastAPI, tmp_path: Path) -> None:
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(app.openapi()))
    generated = subprocess.run(
        [str(OPENAPI_TYPESCRIPT), str(source), "--output", str(tmp_path / "api.d.ts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    types = (tmp_path / "api.d.ts").read_text()
    for field in ("total_revenue", "mrr", "new_revenue", "refund_revenue"):
        assert f"{field}: number;" in types, field
        assert f"{field}: string;" not in types
    assert 'Granularity: "hour" | "day" | "week" | "month";' in types
    assert 'granularity?: "hour" | "day" | "week" | "month";' in types
    assert "amount: number | string;" in types


async def test_a_read_over_every_supported_year_counts_what_is_there(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    # Year 2 to 9998 is 87 million hours: only the hours holding data may be planned.
    recorded = await client.post(
        "/api/v1/goals",
        params={"site_id": SITE},
        json={"name": "signup", "visitor_id": "v_1", "completed_at": "2020-05-01T10:00:00Z"},
        headers=bearer(key),
    )
    assert recorded.status_code == 200, recorded.text
    everything = {"site_id": SITE, "start": "0002-01-01", "end": "9998-12-31"}
    goals = await client.get("/api/v1/goals", params=everything, headers=bearer(key))
    assert goals.status_code == 200, goals.text
    assert goals.json()["results"][0]["completion_count"] == 1
    assert goals.json()["meta"]["visitors"] == 1
    revenue = await client.get("/api/v1/revenue", params=everything, headers=bearer(key))
    assert revenue.status_code == 200, revenue.text
    assert revenue.json()["meta"]["start"] == "0002-01-01T00:00:00Z"
