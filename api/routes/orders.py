"""Order intake, reading and cancellation (the sales channels' side)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from api.access import AuditDep, CallerDep, own_channel
from api.deps import ServicesDep
from backorders.schemas import IDENTIFIER_PATTERN, CancelIn, OrderIn, OrderOut
from backorders.services import intake, orders, views
from backorders.services.errors import Forbidden, unknown_order

router = APIRouter(tags=["orders"])

_ERRORS = {
    409: {"description": "The order conflicts with an earlier one, or a SKU's policy refuses "
                         "to backorder a line"},
    422: {"description": "Malformed request or unknown SKU; `field` names what is wrong"},
}


@router.post("/orders", response_model=OrderOut, status_code=201,
             responses={200: {"model": OrderOut, "description": "Replay of an earlier order"},
                        **_ERRORS})
async def place_order(body: OrderIn, services: ServicesDep, response: Response,
                      caller: CallerDep, audit: AuditDep, request: Request) -> OrderOut:
    """Split each line into what ships now and what waits; start one workflow per line.

    Idempotent per (channel, order_number): the same request again answers the same
    order with 200 and `Idempotent-Replayed: true`; a different request with the same
    number is refused with 409. A channel key places orders for its own channel only."""
    if not caller.sees_channel(body.channel):
        raise Forbidden("forbidden", f"this key places orders for channel {caller.channel!r} "
                        f"only, not {body.channel!r}", field="channel")
    result = await intake.place_native(services.engine, services.settings, body,
                                       await request.body(), request.headers.get("content-type"),
                                       hand_off=await services.intake_hand_off(), audit=audit)
    if not result.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return await views.get_order(services.engine, result.order_id)


@router.get("/orders", response_model=OrderOut)
async def find_order(
    services: ServicesDep,
    caller: CallerDep,
    channel: Annotated[str, Query(min_length=1, max_length=32, pattern=IDENTIFIER_PATTERN)],
    order_number: Annotated[str, Query(min_length=1, max_length=128,
                                              pattern=IDENTIFIER_PATTERN)],
) -> OrderOut:
    """Look an order up by the channel's own order number."""
    if not caller.sees_channel(channel):
        raise Forbidden("forbidden", f"this key reads orders of channel {caller.channel!r} only",
                        field="channel")
    return await views.find_order(services.engine, channel, order_number)


@router.get("/orders/{order_id}", response_model=OrderOut)
async def get_order(order_id: uuid.UUID, services: ServicesDep, caller: CallerDep) -> OrderOut:
    order = await views.get_order(services.engine, order_id)
    own_channel(caller, order.channel, unknown_order(order_id))
    return order


@router.post("/orders/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(
    order_id: uuid.UUID,
    services: ServicesDep,
    caller: CallerDep,
    audit: AuditDep,
    body: Annotated[CancelIn | None, Body()] = None,
) -> OrderOut:
    """Cancel whatever has not begun its hand-over to the carrier; freed units go to the
    next waiting lines. Safe to repeat."""
    own_channel(caller, (await views.get_order(services.engine, order_id)).channel,
                unknown_order(order_id))
    await orders.cancel_order(services.engine, order_id, body or CancelIn(), services.settings,
                              hand_off=services.hand_off, audit=audit)
    return await views.get_order(services.engine, order_id)
