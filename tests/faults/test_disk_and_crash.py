"""A full disk under SQLite and kill -9 under write load: no 500, nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from datasaas.storage.engine import Database
from tests.factories import bearer, make_key, make_site
from tests.faults.conftest import Server

GOALS = "/api/v1/goals?site_id=ds_test"
PAYMENTS = "/api/v1/payments?site_id=ds_test"


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A 6 MiB tmpfs mounted for this test (needs root, as on CI; skipped elsewhere)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_full_disk_answers_503_and_keeps_every_acknowledged_write(
    database: Database, database_url: str, small_disk: Path, serve: list[Server]
) -> None:
    await make_site(database)
    key = await make_key(database)
    await database.dispose()
    source = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    path = small_disk / "datasaas.db"
    shutil.copyfile(source, path)
    server = Server(f"sqlite+aiosqlite:///{path}")
    serve.append(server)
    server.start()
    filler = small_disk / "filler"
    acknowledged, statuses = [], []
    with httpx.Client(base_url=server.base, headers=bearer(key), timeout=60) as client:
        # Leave a little room, then write until the disk is full.
        free = shutil.disk_usage(small_disk).free
        filler.write_bytes(b"\0" * max(0, free - 256 * 1024))
        for n in range(400):
            visitor = f"v{n}_" + "x" * 100
            response = client.post(
                GOALS,
                json={"name": "signup", "visitor_id": visitor, "metadata": {"pad": "y" * 250}},
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                acknowledged.append(visitor)
            else:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "service_unavailable"
                assert "Retry-After" in response.headers
        assert 503 in statuses, "the disk never filled up"
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["disk"].startswith("failed")
        assert client.get(GOALS).status_code == 200  # reads still work

        filler.unlink()  # room again: writes and readiness recover without a restart
        assert client.get("/readyz").status_code == 200
        response = client.post(GOALS, json={"name": "signup", "visitor_id": "after"})
        assert response.status_code == 200
        acknowledged.append("after")
    server.stop()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = connection.execute("SELECT count(*) FROM goal_completion").fetchone()[0]
    assert stored == len(acknowledged)


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
UNLIMITED = {
    "DATASAAS_RATE_LIMIT_PER_MINUTE": "1000000000",
    "DATASAAS_EVENTS_RATE_LIMIT_PER_MINUTE": "1000000000",
}


async def _stored_writes(database: Database) -> tuple[list[str], list[str]]:
    """(transaction ids of every payment, visitor uids of every goal completion)."""
    from sqlalchemy import select
    from sqlmodel import col

    from datasaas.storage.models import GoalCompletion, Payment, Visitor

    async with database.read() as session:
        payments = list((await session.scalars(select(col(Payment.transaction_id)))).all())
        goals = list(
            (
                await session.scalars(
                    select(col(Visitor.uid)).join(
                        GoalCompletion, col(GoalCompletion.visitor_id) == col(Visitor.id)
                    )
                )
            ).all()
        )
    return payments, goals


async def test_kill9_ten_times_under_goals_and_payments_loses_no_acknowledged_write(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    """Ten power cuts while 16 clients write goals and payments sharing group commits: every
    acknowledged write is there after each restart, none twice, the SQLite file intact."""
    await make_site(database)
    key = await make_key(database)
    server = Server(database_url, env=UNLIMITED)
    serve.append(server)
    acknowledged_payments: set[str] = set()
    acknowledged_goals: set[str] = set()
    for crash in range(10):
        server.start()
        stop = asyncio.Event()
        target = len(acknowledged_payments) + len(acknowledged_goals) + 60

        async def writer(
            client: httpx.AsyncClient, n: int, crash: int = crash, stop: asyncio.Event = stop
        ) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                token = f"c{crash}w{n}i{i}{uuid.uuid4().hex[:6]}"
                try:
                    if n % 2:
                        body: dict[str, str] = {
                            "visitor_id": f"v{n}",
                            "amount": "9.99",
                            "currency": "USD",
                            "transaction_id": token,
                        }
                        response = await client.post(PAYMENTS, json=body)
                    else:
                        response = await client.post(
                            GOALS, json={"name": "signup", "visitor_id": token}
                        )
                except httpx.TransportError:
                    return  # the server died under us: this write was never acknowledged
                assert response.status_code == 200, response.text
                (acknowledged_payments if n % 2 else acknowledged_goals).add(token)

        async with httpx.AsyncClient(
            base_url=server.base, headers=bearer(key), timeout=30
        ) as client:
            tasks = [asyncio.create_task(writer(client, n)) for n in range(16)]
            while len(acknowledged_payments) + len(acknowledged_goals) < target:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(server.kill9)
            stop.set()
            await asyncio.gather(*tasks)
        payments, goals = await _stored_writes(database)
        assert len(payments) == len(set(payments))  # nothing duplicated
        assert len(goals) == len(set(goals))
        assert acknowledged_payments <= set(payments), f"crash {crash}: payment lost"
        assert acknowledged_goals <= set(goals), f"crash {crash}: goal lost"
    assert len(acknowledged_payments) >= 100
    assert len(acknowledged_goals) >= 100
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_concurrent_event_batches_are_all_accepted_and_stored(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    """8 clients posting batches of 100 pageviews at once: every batch 202, every event stored
    (a black-box run once saw two batches answered 500 on SQLite)."""
    await make_site(database)
    server = Server(database_url, env=UNLIMITED)
    serve.append(server)
    server.start()
    batches, size = 30, 100

    async def client_posting(client: httpx.AsyncClient, n: int) -> list[int]:
        statuses = []
        for b in range(batches):
            events = [
                {
                    "website_id": "ds_test",
                    "visitor_id": f"v{n}-{b}-{i % 37}",
                    "session_id": f"s{n}-{b}",
                    "event_type": "pageview",
                    "hostname": "example.com",
                    "url": f"https://example.com/p/{i}",
                }
                for i in range(size)
            ]
            response = await client.post("/api/events", json=events)
            statuses.append(response.status_code)
        return statuses

    async with httpx.AsyncClient(
        base_url=server.base, headers={"User-Agent": BROWSER}, timeout=60
    ) as client:
        results = await asyncio.gather(*(client_posting(client, n) for n in range(8)))
    assert [s for statuses in results for s in statuses] == [202] * (8 * batches)
    from sqlalchemy import func, select

    from datasaas.storage.models import Pageview

    async with database.read() as session:
        stored = await session.scalar(select(func.count()).select_from(Pageview))
    assert stored == 8 * batches * size
