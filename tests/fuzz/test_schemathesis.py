"""schemathesis, every check, against a live server holding the demo site and a read & write key.
``make test`` runs a few hundred cases with a fixed seed and no coverage phase; ``make fuzz``
runs every phase, thousands of cases, with a fresh seed (``DATASAAS_FUZZ_EXAMPLES``,
``DATASAAS_FUZZ_SEED``, ``DATASAAS_FUZZ_PHASES``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from datasaas.devserver import free_port, wait_for_server

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("DATASAAS_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("DATASAAS_FUZZ_SEED", "1")
# The coverage phase alone is ~3,500 boundary cases: make fuzz runs it, make test does not.
PHASES = os.environ.get("DATASAAS_FUZZ_PHASES", "examples,fuzzing,stateful")
MEMORY_CAP = 3 * 1024**3  # a runaway request fails the run (a 500) instead of the machine


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A uvicorn process on a fresh demo database; yields its base URL and a read & write key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASAAS_")}
    env |= {
        "DATASAAS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}",
        # Thousands of requests a minute from one key: the limiter is not what is under test.
        "DATASAAS_RATE_LIMIT_PER_MINUTE": "100000000",
        "DATASAAS_EVENTS_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    cli = str(BIN / "datasaas")
    subprocess.run([cli, "migrate"], env=env, check=True, capture_output=True)
    demo = [cli, "demo", "--visitors", "200", "--days", "14", "--seed", "1"]
    subprocess.run(demo, env=env, check=True, capture_output=True)
    created = subprocess.run(
        [cli, "keys", "create", "--site", "ds_demo", "--scope", "read_write", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = json.loads(created.stdout)["key"]
    port = free_port()
    command = [str(BIN / "uvicorn"), "datasaas.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "critical"]
    process = subprocess.Popen(command, env=env, preexec_fn=_cap_memory)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, process)
        yield base, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_schemathesis_finds_nothing(demo_server: tuple[str, str], tmp_path: Path) -> None:
    base, key = demo_server
    command = [str(BIN / "schemathesis"), "--config-file", str(CONFIG), "run"]
    command += [f"{base}/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES)]
    command += ["--phases", PHASES, "--no-color", "--report-dir", str(tmp_path)]
    if SEED:
        command += ["--seed", SEED]
    env = {**os.environ, "DATASAAS_FUZZ_KEY": key}
    run = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)
    assert run.returncode == 0, run.stdout[-20000:]
    assert " passed" in summary
