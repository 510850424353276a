"""Small asyncio helpers for the live machinery's background loops."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass, whichever comes first.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for`` can
    swallow a cancellation that arrives as the awaited event fires, and a loop built on it then
    never stops.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if it swallowed the first."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
