from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

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
