"""Serving: uvicorn's httptools protocol with limits it lacks — header size and header time.

uvicorn bounds neither how large a request's headers may be (its httptools protocol accepts
megabytes) nor how long a client may take to send them (a slow client holds its connection
forever). Here a request whose request line and headers exceed ``max_header_bytes`` is answered
431 and closed; a connection that has not sent a request's complete headers within
``header_timeout`` seconds of its first byte (or of connecting), or its whole body within
``body_timeout`` seconds of its headers, is answered 408 and closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from datasaas.config import get_settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadersRefused(Exception):
    """Raised inside a parser callback to stop parsing a refused request."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus a header size limit (431) and a header read timeout (408)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_header_bytes = settings.max_header_bytes
        self._header_timeout = settings.header_timeout
        self._body_timeout = settings.body_timeout
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks."""
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A new request: count its header bytes from zero, start its clock."""
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        """Count the URL towards the header limit."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header towards the limit."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The headers are in: stop their clock, start the body's."""
        self._disarm()
        if self._body_timeout > 0:
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is in: no more clock for it."""
        self._disarm_body()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, unless this protocol already refused."""
        if not self._refused:
            super().send_400_response(msg)

    def _arm(self) -> None:
        if self._header_timer is None and self._header_timeout > 0:
            self._header_timer = self.loop.call_later(self._header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408)
        elif not self.transport.is_closing():
            self.transport.close()

    def _timed_out(self) -> None:
        self._header_timer = None
        # Idle between requests is uvicorn's keep-alive timeout; this is a slow request.
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._max_header_bytes:
            self._refuse(431)
            raise _HeadersRefused

    def _refuse(self, status: int) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        reason = _REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(reason), reason)
        )
        self.transport.close()
