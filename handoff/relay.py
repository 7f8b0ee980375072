"""The relay every worker runs: delivers the outbox rows that are due, woken by
PostgreSQL's NOTIFY (on the channel the writers notify) or by a poll timer."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from backorders.services.outbox import CHANNEL
from backorders.settings import Settings
from handoff.deliver import DeliveryReport, OutboxDeliverer

log = logging.getLogger(__name__)


class OutboxRelay:
    """Runs in every worker: delivers due rows, woken by NOTIFY or a poll timer."""

    def __init__(self, deliverer: OutboxDeliverer, settings: Settings) -> None:
        self._deliverer = deliverer
        self._settings = settings
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                try:
                    report = await self._deliverer.deliver()
                except Exception:
                    log.exception("outbox relay pass failed")
                    report = DeliveryReport()
                if report.claimed >= self._settings.outbox_batch_size:
                    continue
                self._wake.clear()
                waits = [asyncio.ensure_future(self._wake.wait()),
                         asyncio.ensure_future(stop.wait())]
                await asyncio.wait(
                    waits, timeout=self._settings.outbox_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for w in waits:
                    w.cancel()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.libpq_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox listener reconnecting: %s", exc)
                await asyncio.sleep(1.0)


