"""The ``datasaas`` console script, run as a user runs it: a real process on a real database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from datasaas.devserver import free_port, wait_for_server


def datasaas(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``--database-url``."""
    return subprocess.run(
        [sys.executable, "-m", "datasaas", *args, "--database-url", url],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def test_every_command_has_help() -> None:
    for command in (
        [],
        ["serve"],
        ["migrate"],
        ["sites", "create"],
        ["sites", "list"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["demo"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "datasaas", *command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "Usage" in result.stdout


def test_sites_and_keys_round_trip_as_json(url: str, tmp_path: Path) -> None:
    created = json.loads(
        datasaas(
            "sites",
            "create",
            "--name",
            "Shop",
            "--domain",
            "https://www.Shop.example/",
            "--id",
            "ds_shop",
            "--currency",
            "eur",
            "--json",
            url=url,
        ).stdout
    )
    assert created["id"] == "ds_shop"
    assert created["domain"] == "shop.example"
    assert created["currency"] == "EUR"
    listed = json.loads(datasaas("sites", "list", "--json", url=url).stdout)
    assert [s["id"] for s in listed] == ["ds_shop"]

    result = datasaas("keys", "create", "--site", "ds_shop", "--scope", "read", "--json", url=url)
    key = json.loads(result.stdout)  # one JSON object and nothing else on stdout
    assert set(key) == {"id", "site_id", "scope", "key"}
    assert key["site_id"] == "ds_shop"
    assert key["scope"] == "read"
    assert key["key"].startswith("ds_live_")
    assert len(key["key"]) == len("ds_live_") + 32

    keys = json.loads(datasaas("keys", "list", "--site", "ds_shop", "--json", url=url).stdout)
    assert [k["id"] for k in keys] == [key["id"]]
    assert key["key"] not in json.dumps(keys)

    # The secret is nowhere in the database file: only its SHA-256 is stored.
    database = tmp_path / "cli.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(FULL)")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("cli.db*"))
    assert key["key"].encode() not in raw
    assert key["key"][8:].encode() not in raw


def test_duplicate_site_and_unknown_site_fail_cleanly(url: str) -> None:
    datasaas("sites", "create", "--name", "A", "--domain", "a.example", "--id", "ds_a", url=url)
    again = datasaas(
        "sites",
        "create",
        "--name",
        "A",
        "--domain",
        "a.example",
        "--id",
        "ds_a",
        url=url,
        check=False,
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    missing = datasaas(
        "keys", "create", "--site", "ds_nope", "--scope", "read", url=url, check=False
    )
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_key_works_over_http_until_revoked(url: str) -> None:
    datasaas("sites", "create", "--name", "A", "--domain", "a.example", "--id", "ds_a", url=url)
    key = json.loads(
        datasaas("keys", "create", "--site", "ds_a", "--scope", "read", "--json", url=url).stdout
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "datasaas", "serve", "--port", str(port), "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DATASAAS_LOG_LEVEL": "warning"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, server)
        headers = {"Authorization": f"Bearer {key['key']}"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert httpx.get(f"{base}/api/v1/goals?site_id=ds_a", headers=headers).status_code == 200
        datasaas("keys", "revoke", key["id"], url=url)
        refused = httpx.get(f"{base}/api/v1/goals?site_id=ds_a", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthorized"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    # A PostgreSQL URL on a port where nothing listens: the process is up, the database is not.
    env = {
        **os.environ,
        "DATASAAS_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none",
        "DATASAAS_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "datasaas.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, server)
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503
        assert "Traceback" not in ready.text
    finally:
        server.terminate()
        server.wait(timeout=10)
