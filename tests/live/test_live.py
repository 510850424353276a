"""Live data and push (CONTRACT §14) over real sockets against real uvicorn processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets
from standardwebhooks import Webhook

from datasaas.devserver import clean_env, free_port, server_process
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers.sites import Scope
from datasaas.storage.engine import Database
from tests.conftest import GEOIP_TEST_DB
from tests.factories import bearer, make_key, make_site

SITE = "ds_test"
COMPLETION = (
    "subscription($site: String!, $goal: String) { completionCreated(siteId: $site, goal: $goal)"
    " { visitorId completedAt source url metadata } }"
)
PAYMENT = (
    "subscription($site: String!) { paymentCreated(siteId: $site)"
    " { transactionId amount currency paymentType source } }"
)


@contextmanager
def server(database_url: str, **env_extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A uvicorn worker on the database (like conftest's ``live_server``), killable by the test."""
    settings = {"DATASAAS_DATABASE_URL": database_url, "DATASAAS_GEOIP_DB": str(GEOIP_TEST_DB)}
    with server_process(clean_env(settings | env_extra)) as (base, process):
        yield base, process


class Subscriber:
    """A graphql-transport-ws client connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def subscribe(self, query: str, **variables: Any) -> str:
        self.next_id += 1
        op = str(self.next_id)
        message = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": message}))
        return op

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return dict(message)


@asynccontextmanager
async def subscriber(base: str, key: str) -> AsyncIterator[Subscriber]:
    url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {key}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        yield Subscriber(ws)


async def setup_site(database_url: str) -> tuple[str, str]:
    database = Database(database_url)
    try:
        await make_site(database, site_id=SITE, domain="example.com")
        await make_site(database, site_id="ds_other", domain="other.example.com")
        write = await make_key(database, site_id=SITE)
        read = await make_key(database, site_id=SITE, scope=Scope.READ)
        return write.secret, read.secret
    finally:
        await database.dispose()


async def test_completions_from_rest_and_graphql_with_first_touch_and_goal_filter(
    database_url: str,
) -> None:
    key, _ = await setup_site(database_url)
    with server(database_url) as (base, _process):
        async with subscriber(base, key) as sub, httpx.AsyncClient(base_url=base) as http:
            every = await sub.subscribe(COMPLETION, site=SITE)
            only_buy = await sub.subscribe(COMPLETION, site=SITE, goal="Buy")
            await asyncio.sleep(0.3)
            event = {
                "website_id": SITE,
                "visitor_id": "v1",
                "session_id": "s1",
                "event_type": "pageview",
                "url": "https://example.com/",
                "hostname": "example.com",
                "referrer": "https://www.google.com/search",
            }
            assert (await http.post("/api/events", json=event)).status_code == 202
            r = await http.post(
                f"/api/v1/goals?site_id={SITE}",
                headers=bearer(key),
                json={"name": "signup", "visitor_id": "v1", "metadata": {"plan": "pro"}},
            )
            assert r.status_code == 200
            mutation = (
                'mutation { createGoal(siteId: "ds_test", input: {name: "buy", visitorId: "v1"})'
                " { created } }"
            )
            r = await http.post("/graphql", headers=bearer(key), json={"query": mutation})
            assert r.json()["data"]["createGoal"]["created"] is True
            received = [await sub.receive() for _ in range(3)]
            by_op: dict[str, list[dict[str, Any]]] = {}
            for message in received:
                assert message["type"] == "next", message
                by_op.setdefault(message["id"], []).append(
                    message["payload"]["data"]["completionCreated"]
                )
            assert [c["metadata"] for c in by_op[every]] == [{"plan": "pro"}, None]
            assert all(c["source"] == "google.com" for c in by_op[every])
            assert all(c["visitorId"] == "v1" for c in by_op[every])
            assert len(by_op[only_buy]) == 1
            # Realtime: the pageview's visitor is counted, over REST and GraphQL.
            r = await http.get(f"/api/v1/realtime?site_id={SITE}", headers=bearer(key))
            assert r.json() == {
                "results": {"visitors": 1},
                "meta": {"site_id": SITE, "window_seconds": 90},
            }


class Abort(Exception):
    """Raised inside a write transaction to roll it back."""


async def write_then_fail(database: Database) -> None:
    async with database.write() as session:
        await goal_resolvers.record_goal(
            session, site_id=SITE, goal=goal_resolvers.GoalIn(name="ghost", visitor_id="v_ghost")
        )
        raise Abort


async def test_rolled_back_write_never_delivered_and_order_kept(database_url: str) -> None:
    key, _ = await setup_site(database_url)
    with server(database_url) as (base, _process):
        async with subscriber(base, key) as sub:
            await sub.subscribe(COMPLETION, site=SITE)
            await asyncio.sleep(0.3)
            database = Database(database_url)
            try:
                with pytest.raises(Abort):
                    await write_then_fail(database)
                for n in range(5):
                    async with database.write() as session:
                        await goal_resolvers.record_goal(
                            session,
                            site_id=SITE,
                            goal=goal_resolvers.GoalIn(name="real", visitor_id=f"v{n}"),
                        )
            finally:
                await database.dispose()
            seen = [
                (await sub.receive())["payload"]["data"]["completionCreated"]["visitorId"]
                for _ in range(5)
            ]
            assert seen == [f"v{n}" for n in range(5)]
            with pytest.raises(TimeoutError):
                await sub.receive(timeout=1.5)


async def test_authorization_and_subscription_limit(database_url: str) -> None:
    key, read_key = await setup_site(database_url)
    with server(database_url) as (base, _process):
        async with subscriber(base, read_key) as sub:
            op = await sub.subscribe(PAYMENT, site="ds_other")
            message = await sub.receive()
            assert message["id"] == op
            errors = (
                message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            )
            assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        async with subscriber(base, "ds_live_" + "x" * 32) as sub:
            await sub.subscribe(PAYMENT, site=SITE)
            message = await sub.receive()
            errors = (
                message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            )
            assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        async with subscriber(base, read_key) as sub:
            for _ in range(20):
                await sub.subscribe(PAYMENT, site=SITE)
            extra = await sub.subscribe(PAYMENT, site=SITE)
            message = await sub.receive()
            assert message == {
                "id": extra,
                "type": "error",
                "payload": [{"message": "Subscription limit reached"}],
            } or (message["id"] == extra and message["type"] == "error")
            # The 20 still work: a payment reaches every one of them.
            async with httpx.AsyncClient(base_url=base) as http:
                r = await http.post(
                    f"/api/v1/payments?site_id={SITE}",
                    headers=bearer(key),
                    json={
                        "visitor_id": "v1",
                        "amount": 12.5,
                        "currency": "USD",
                        "transaction_id": "t1",
                    },
                )
                assert r.status_code == 200
            got = [await sub.receive() for _ in range(20)]
            assert {m["id"] for m in got} == {str(n) for n in range(1, 21)}
            assert got[0]["payload"]["data"]["paymentCreated"]["amount"] == "12.50"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_on_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    key, _ = await setup_site(database_url)
    with server(database_url) as (one, _p1), server(database_url) as (two, _p2):
        async with subscriber(one, key) as sub, httpx.AsyncClient(base_url=two) as http:
            await sub.subscribe(PAYMENT, site=SITE)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            r = await http.post(
                f"/api/v1/payments?site_id={SITE}",
                headers=bearer(key),
                json={"visitor_id": "v1", "amount": 99, "currency": "USD", "transaction_id": "pg1"},
            )
            assert r.status_code == 200
            message = await sub.receive()
            assert message["payload"]["data"]["paymentCreated"]["transactionId"] == "pg1"
            assert time.monotonic() - started < 1.0


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first ``failures`` requests with 500."""

    def __init__(self, failures: int, port: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(outer.requests) <= outer.failures else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cli(database_url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "datasaas", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout) if "--json" in args else done.stdout


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_webhook_retried_until_delivered_with_stable_id_and_valid_signature(
    database_url: str,
) -> None:
    key, _ = await setup_site(database_url)
    receiver = Receiver(failures=3)
    try:
        hook = cli(
            database_url,
            "webhooks",
            "add",
            "--site",
            SITE,
            "--url",
            receiver.url,
            "--events",
            "payment.created,payment.refunded",
            "--json",
        )
        assert hook["secret"].startswith("whsec_")
        with server(database_url) as (base, _process):
            async with httpx.AsyncClient(base_url=base) as http:
                started = time.monotonic()
                r = await http.post(
                    f"/api/v1/payments?site_id={SITE}",
                    headers=bearer(key),
                    json={
                        "visitor_id": "v1",
                        "amount": "10.00",
                        "currency": "USD",
                        "transaction_id": "w1",
                    },
                )
                assert r.status_code == 200
                await wait_until(lambda: len(receiver.requests) >= 1, 2.0)
                assert time.monotonic() - started < 2.0
                await wait_until(lambda: len(receiver.requests) >= 4, 60.0)
        ids = {headers["webhook-id"] for headers, _ in receiver.requests}
        assert len(ids) == 1
        headers, body = receiver.requests[-1]
        verified = Webhook(hook["secret"]).verify(body, headers)
        assert verified["type"] == "payment.created"
        assert verified["data"]["transaction_id"] == "w1"
        assert verified["data"]["amount"] == 10.0
        assert b'"amount":10.00' in body
        log = cli(database_url, "webhooks", "deliveries", hook["id"], "--json")
        assert log[0]["status"] == "delivered"
        assert [a["status_code"] for a in log[0]["log"]] == [500, 500, 500, 200]
    finally:
        receiver.close()


async def test_webhook_delivered_after_kill_9(database_url: str) -> None:
    key, _ = await setup_site(database_url)
    port = free_port()  # nothing listens yet: the first attempt is refused
    hook = cli(
        database_url,
        "webhooks",
        "add",
        "--site",
        SITE,
        "--url",
        f"http://127.0.0.1:{port}/hook",
        "--events",
        "payment.created",
        "--json",
    )
    with server(database_url) as (base, process):
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.post(
                f"/api/v1/payments?site_id={SITE}",
                headers=bearer(key),
                json={"visitor_id": "v1", "amount": 5, "currency": "USD", "transaction_id": "k1"},
            )
            assert r.status_code == 200
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    receiver = Receiver(failures=0, port=port)
    try:
        with server(database_url):
            await wait_until(lambda: len(receiver.requests) >= 1, 30.0)
        headers, body = receiver.requests[0]
        assert Webhook(hook["secret"]).verify(body, headers)["data"]["transaction_id"] == "k1"
        assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1
    finally:
        receiver.close()
