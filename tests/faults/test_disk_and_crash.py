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


async def test_kill9_under_write_load_loses_no_acknowledged_write(
    database: Database, database_url: str, serve: list[Server]
) -> None:
    await make_site(database)
    key = await make_key(database)
    server = Server(database_url)
    serve.append(server)
    server.start()
    acknowledged: set[str] = set()
    stop = asyncio.Event()

    async def writer(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            transaction = f"t{n}_{i}_{uuid.uuid4().hex[:6]}"
            body = {
                "visitor_id": f"v{n}",
                "amount": "9.99",
                "currency": "USD",
                "transaction_id": transaction,
            }
            try:
                response = await client.post(PAYMENTS, json=body)
            except httpx.TransportError:
                return  # the server died under us: this write was never acknowledged
            if response.status_code == 200:
                acknowledged.add(transaction)

    async with httpx.AsyncClient(base_url=server.base, headers=bearer(key), timeout=30) as client:
        tasks = [asyncio.create_task(writer(client, n)) for n in range(8)]
        while len(acknowledged) < 150:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.kill9)
        stop.set()
        await asyncio.gather(*tasks)
    server.start()  # the same database after the crash
    async with httpx.AsyncClient(base_url=server.base, headers=bearer(key), timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 200
    async with database.read() as session:
        from sqlalchemy import select
        from sqlmodel import col

        from datasaas.storage.models import Payment

        stored = list((await session.execute(select(col(Payment.transaction_id)))).scalars())
    assert len(stored) == len(set(stored))  # nothing duplicated
    assert acknowledged <= set(stored)  # nothing acknowledged lost
