"""The app in a real uvicorn process on a free port: one launcher for the tests and the benchmarks.

Standard library only, so that nothing here needs the dev dependencies.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

APP = "datasaas.app:create_app"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment without the caller's ``DATASAAS_*`` variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASAAS_")}
    return env | dict(settings)


def uvicorn_command(port: int, *, workers: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """The command line serving the app factory on 127.0.0.1:``port``."""
    command = [sys.executable, "-m", "uvicorn", APP, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    if workers > 1:
        command += ["--workers", str(workers)]
    return [*command, *extra]


def wait_for_server(base: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Block until ``base``/healthz answers 200; fail if the process dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /healthz within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """Terminate the process, then kill it if it has not exited after ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def server_process(
    env: Mapping[str, str],
    *,
    workers: int = 1,
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve the app with exactly ``env`` until the block ends; yield its base URL and process
    (for tests that kill it themselves: a process that already exited is left as it is)."""
    port = free_port()
    process = subprocess.Popen(uvicorn_command(port, workers=workers), env=dict(env), cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, process, timeout)
        yield base, process
    finally:
        if process.poll() is None:
            stop(process)


@contextmanager
def running_server(
    env: Mapping[str, str],
    *,
    workers: int = 1,
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[str]:
    """Serve the app with exactly ``env`` until the block ends; yield its base URL."""
    with server_process(env, workers=workers, timeout=timeout, cwd=cwd) as (base, _process):
        yield base
