"""Heartbeat while an activity runs, for activities that do not wait in a loop of their
own (the warehouse steps heartbeat as they wait; see `warehouse._work_for`).

With a heartbeat timeout, an attempt whose worker died, or whose result was lost on
the way to a restarting Temporal server, is retried within that timeout instead of
after the whole start-to-close timeout: minutes a line would otherwise sit there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

EVERY_SECONDS = 5.0
"""Well inside the workflows' notification heartbeat timeout (`workflows.line`)."""


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
