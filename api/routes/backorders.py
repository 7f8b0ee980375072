"""The backorder queues, for ops and parts managers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.access import CallerDep, own_channel
from api.deps import ServicesDep
from backorders.domain.lifecycle import LineStatus
from backorders.schemas import IDENTIFIER_PATTERN, SKU_PATTERN, BackorderDetailOut, BackorderPage
from backorders.services import views
from backorders.services.errors import unknown_line

router = APIRouter(tags=["backorders"])


@router.get("/backorders", response_model=BackorderPage)
async def list_backorders(
    services: ServicesDep,
    caller: CallerDep,
    sku: Annotated[str | None, Query(pattern=SKU_PATTERN)] = None,
    status: Annotated[LineStatus | None, Query(
        description="Filter backordered lines by status; without it, lines still waiting")] = None,
    customer_id: Annotated[str | None, Query(max_length=128, pattern=IDENTIFIER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> BackorderPage:
    """Backordered lines with their queue position, quantities and age, by SKU and queue
    order. A channel key sees its own channel's lines."""
    return await views.list_backorders(services.engine, sku=sku, status=status,
                                       customer_id=customer_id, channel=caller.channel_scope,
                                       limit=limit, offset=offset)


@router.get("/backorders/{line_id}", response_model=BackorderDetailOut)
async def get_backorder(line_id: uuid.UUID, services: ServicesDep,
                        caller: CallerDep) -> BackorderDetailOut:
    """One line with its allocations and its timeline."""
    line = await views.get_backorder(services.engine, line_id)
    own_channel(caller, line.channel, unknown_line(line_id))
    return line
