"""The HTTP edge as an abusive client meets it: huge or slow headers, shared limits, headers."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site
from tests.faults.conftest import Server

REDIS_URL = os.environ.get("DATASAAS_TEST_REDIS_URL", "")


def raw_request(base_port: int, payload: bytes, *, wait: float = 15) -> bytes:
    """Send raw bytes, return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", base_port), timeout=wait) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_oversized_and_slow_headers_are_refused(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    server = Server(
        database_url, env={"DATASAAS_HEADER_TIMEOUT": "1.5", "DATASAAS_BODY_TIMEOUT": "1.5"}
    )
    serve.append(server)
    server.start()
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2_000_000 + b"\r\n\r\n"
    try:
        answer = raw_request(server.port, huge)
    except (ConnectionResetError, BrokenPipeError):
        answer = b"HTTP/1.1 431"  # closed while we were still sending: refused all the same
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]

    began = time.monotonic()
    slow = raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert slow.startswith(b"HTTP/1.1 408"), slow[:80]
    assert time.monotonic() - began < 10

    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as idle:
        began = time.monotonic()
        assert idle.recv(1024).startswith(b"HTTP/1.1 408")  # connected, said nothing
        assert time.monotonic() - began < 10

    began = time.monotonic()
    partial = b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    partial += b"Content-Length: 100\r\n\r\n{"
    assert raw_request(server.port, partial).startswith(b"HTTP/1.1 408")  # body never finished
    assert time.monotonic() - began < 10

    # An ordinary request on the same server is unaffected.
    assert httpx.get(f"{server.base}/healthz").status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="DATASAAS_TEST_REDIS_URL is not set")
@pytest.mark.parametrize("database_url", [pytest.param("postgres")], indirect=True)
async def test_rate_limit_is_shared_by_two_workers_through_redis(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    await make_site(database)
    key = await make_key(database)  # a new key: a fresh budget in Redis
    env = {"DATASAAS_REDIS_URL": REDIS_URL, "DATASAAS_RATE_LIMIT_PER_MINUTE": "20"}
    server = Server(database_url, workers=2, env=env)
    serve.append(server)
    server.start()
    statuses = []
    for _ in range(30):
        # A new connection each time, so both workers answer some of them.
        response = httpx.get(
            f"{server.base}/api/v1/goals?site_id=ds_test", headers=bearer(key), timeout=30
        )
        statuses.append(response.status_code)
    assert statuses == [200] * 20 + [429] * 10


async def test_security_headers(client: httpx.AsyncClient, database: Database) -> None:
    await make_site(database)
    key = await make_key(database)
    api = await client.get("/api/v1/goals?site_id=ds_test", headers=bearer(key))
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Cache-Control"] == "no-store"
    refused = await client.get("/api/v1/goals?site_id=ds_test")
    assert refused.headers["Cache-Control"] == "no-store"
    graphql = await client.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(key))
    assert graphql.headers["Cache-Control"] == "no-store"
    for page in ("/graphql", "/docs"):
        html = await client.get(page, headers={"Accept": "text/html"})
        assert html.headers["content-type"].startswith("text/html")
        policy = html.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert html.headers["X-Frame-Options"] == "DENY"
        assert html.headers["X-Content-Type-Options"] == "nosniff"
    health = await client.get("/healthz")
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    script = await client.get("/js/script.js")
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert script.headers["Cache-Control"].startswith("public")
