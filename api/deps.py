from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from backorders.services.gauges import Cached
from backorders.services.unit_of_work import TO_RELAY, HandOff
from backorders.settings import Settings
from handoff.deliver import OutboxDeliverer

if TYPE_CHECKING:
    from api.access import RateLimits

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    client: Client
    deliverer: OutboxDeliverer
    rate_limits: RateLimits
    gauges: Cached
    """The ledger's gauges for /metrics, read at most every few seconds."""

    backlog_seen: tuple[float, int] = (0.0, 0)
    """(when, pending hand-offs): looked at no more than once a second."""

    async def intake_hand_off(self) -> HandOff:
        """How an order's workflow starts go out: delivered by this request, or, while
        the backlog is over INTAKE_QUEUE_BACKLOG (a burst), left to the relays."""
        limit = self.settings.intake_queue_backlog
        at, pending = self.backlog_seen
        if time.monotonic() - at > 1.0:
            async with self.engine.connect() as conn:
                pending = (await conn.execute(sa.text(
                    "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE delivered_at IS NULL "
                    "AND dead_at IS NULL LIMIT :n) pending"), {"n": limit + 1})).scalar_one()
            self.backlog_seen = (time.monotonic(), pending)
        return TO_RELAY if pending > limit else self.hand_off

    async def hand_off(self, outbox_ids: list[int]) -> None:
        """Deliver what this request just committed. A failure here only delays the
        message: the relay delivers it after the grace period."""
        if not outbox_ids:
            return
        try:
            await asyncio.wait_for(self.deliverer.deliver(outbox_ids),
                                   timeout=self.settings.outbox_inline_timeout_seconds)
        except Exception as exc:
            log.warning("hand-off of %d message(s) deferred to the relay: %r",
                        len(outbox_ids), exc)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
