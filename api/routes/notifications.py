"""Notifications: customer preferences, the opt-out link and SMS keyword, the message
log ops and analytics read, and recording a supply delay on a waiting line."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request

from api.deps import ServicesDep
from api.params import IdentifierPath
from backorders.notify import store
from backorders.notify.message import Channel
from backorders.schemas import (
    IDENTIFIER_PATTERN,
    DelayIn,
    NotificationOut,
    NotificationPage,
    PreferencesIn,
    PreferencesOut,
)
from backorders.services import delays
from backorders.services.errors import Forbidden, NotFound

router = APIRouter(tags=["notifications"])

CustomerPath = IdentifierPath
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}


@router.put("/customers/{customer_id}/preferences", response_model=PreferencesOut)
async def put_preferences(customer_id: CustomerPath, body: PreferencesIn,
                          services: ServicesDep) -> PreferencesOut:
    """Channels in order, instant or daily digest, quiet hours, opt-outs and segments.
    Honoured from the next message on, including messages already waiting."""
    return await store.put_preferences(services.engine, customer_id, body)


@router.get("/customers/{customer_id}/preferences", response_model=PreferencesOut)
async def get_preferences(customer_id: CustomerPath, services: ServicesDep) -> PreferencesOut:
    return await store.get_preferences(services.engine, customer_id)


@router.get("/customers/{customer_id}/opt-out",
            responses={403: {"description": "The link's token is not valid."}})
async def opt_out_link(
    customer_id: CustomerPath,
    channel: Literal["email", "sms", "push"],
    token: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")],
    services: ServicesDep,
) -> dict[str, str]:
    """The link at the foot of every message: opts the customer out of that channel."""
    secret = services.settings.notify_secret.get_secret_value()
    if not store.opt_out_valid(secret, customer_id, channel, token):
        raise Forbidden("invalid_token", "this opt-out link is not valid", field="token")
    if not await store.opt_out(services.engine, customer_id, Channel(channel)):
        raise NotFound("unknown_customer", f"no customer {customer_id!r}", field="customer_id")
    return {"customer_id": customer_id, "opted_out": channel}


@router.post("/sms/inbound")
async def sms_inbound(request: Request, services: ServicesDep) -> dict[str, object]:
    """The SMS provider's inbound webhook (form-encoded From and Body): a STOP keyword
    opts that number out of SMS at once."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    sender = (form.get("From") or [""])[0].strip()
    words = (form.get("Body") or [""])[0].strip().upper().split()
    if sender and words and words[0] in STOP_WORDS:
        customers = await store.opt_out_phone(services.engine, sender)
        return {"opted_out": "sms", "customers": customers}
    return {"opted_out": None, "customers": []}


@router.get("/notifications", response_model=NotificationPage)
async def list_notifications(
    services: ServicesDep,
    order_id: uuid.UUID | None = None,
    customer_id: Annotated[str | None, Query(max_length=128, pattern=IDENTIFIER_PATTERN)] = None,
    status: Literal["pending", "queued", "sent", "suppressed", "failed", "digested"] | None = None,
    event: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> NotificationPage:
    """What was sent, queued, suppressed (and why) or failed, with timestamps."""
    rows, total = await store.list_notifications(
        services.engine, order_id=order_id, customer_id=customer_id, status=status,
        event=event, limit=limit, offset=offset)
    return NotificationPage(
        items=[NotificationOut.model_validate(r._mapping) for r in rows],
        total=total, limit=limit, offset=offset)


@router.post("/backorders/{line_id}/delay", status_code=202)
async def record_delay(line_id: uuid.UUID, body: DelayIn,
                       services: ServicesDep) -> dict[str, str]:
    """Supply for a waiting line slipped: its customer is told."""
    event_id, outbox_ids = await delays.record_delay(services.engine, line_id, body.reason,
                                                     services.settings)
    await services.hand_off(outbox_ids)
    return {"line_id": str(line_id), "event_id": event_id}
