"""Fault-injection fixtures: the real ``datasaas serve`` process, a TCP proxy the test can cut.

These tests drive the product as an operator sees it: over real HTTP against ``datasaas serve``
(one or two workers), with faults injected from outside the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from datasaas.devserver import free_port, wait_for_server
from tests.conftest import GEOIP_TEST_DB

DATASAAS = str(Path(sys.executable).with_name("datasaas"))


@dataclass
class Server:
    """A running ``datasaas serve``; ``restart`` starts it again on the same port."""

    database_url: str
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATASAAS_")}
        env |= {"DATASAAS_GEOIP_DB": str(GEOIP_TEST_DB), "DATASAAS_LOG_LEVEL": "warning"}
        env |= self.env
        self.process = subprocess.Popen(
            [
                DATASAAS,
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--database-url",
                self.database_url,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # kill -9 reaches the workers too
        )
        wait_for_server(self.base, self.process)

    def kill9(self) -> None:
        """SIGKILL the server and all its workers, as a power cut would."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server gracefully (or kill it after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()


@pytest.fixture
def serve() -> Iterator[list[Server]]:
    """A list to append ``Server``s to; each one is stopped at the end of the test."""
    servers: list[Server] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that the test can cut (every connection reset) and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                assert self._flowing is not None
                await self._flowing.wait()  # a frozen network: bytes go nowhere
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    def start(self) -> None:
        """Accept and forward connections."""
        self._call(self._start())

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        self._call(self._cut())

    def freeze(self) -> None:
        """Keep every connection open but forward nothing (a silent network)."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def thaw(self) -> None:
        """Forward again."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        """Cut and stop the proxy's thread."""
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def get_json(url: str, **kwargs: object) -> httpx.Response:
    """GET with a short timeout (a hung server fails the test rather than stalls it)."""
    return httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
