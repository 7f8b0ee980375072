"""Notifications: customer preferences, the opt-out link and SMS keyword, the message
log ops and analytics read, and recording a supply delay on a waiting line."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from api.access import AuditDep
from api.deps import ServicesDep
from api.params import IdentifierPath
from api.webhooks import SIGNED_RESPONSES, TwilioForm
from backorders.schemas import (
    IDENTIFIER_PATTERN,
    DelayIn,
    NotificationPage,
    PreferencesIn,
    PreferencesOut,
)
from backorders.services import delays, notifications, preferences

router = APIRouter(tags=["notifications"])

CustomerPath = IdentifierPath


@router.put("/customers/{customer_id}/preferences", response_model=PreferencesOut)
async def put_preferences(customer_id: CustomerPath, body: PreferencesIn,
                          services: ServicesDep, audit: AuditDep) -> PreferencesOut:
    """Channels in order, instant or daily digest, quiet hours, opt-outs and segments.
    Honoured from the next message on, including messages already waiting."""
    return await preferences.put_preferences(services.engine, customer_id, body,
                                             services.settings, audit=audit)


@router.get("/customers/{customer_id}/preferences", response_model=PreferencesOut)
async def get_preferences(customer_id: CustomerPath, services: ServicesDep) -> PreferencesOut:
    return await preferences.get_preferences(services.engine, customer_id)


@router.get("/customers/{customer_id}/opt-out",
            responses={403: {"description": "The link's token is not valid."}})
async def opt_out_link(
    customer_id: CustomerPath,
    channel: Literal["email", "sms", "push"],
    token: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")],
    services: ServicesDep,
    request: Request,
) -> dict[str, str]:
    """The link at the foot of every message: opts the customer out of that channel."""
    await preferences.opt_out_by_link(services.engine, services.settings, customer_id,
                                      channel, token, path=request.url.path)
    return {"customer_id": customer_id, "opted_out": channel}


@router.post("/sms/inbound", responses=SIGNED_RESPONSES)
async def sms_inbound(form: TwilioForm, services: ServicesDep,
                      request: Request) -> dict[str, object]:
    """The SMS provider's inbound webhook (form-encoded From and Body), acted on only when
    Twilio signed it: a STOP keyword opts that number out of SMS at once."""
    customers = await preferences.sms_reply(services.engine, services.settings,
                                            form.get("From", ""), form.get("Body", ""),
                                            path=request.url.path)
    if customers is None:
        return {"opted_out": None, "customers": []}
    return {"opted_out": "sms", "customers": customers}


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
    return await notifications.list_notifications(services.engine, notifications.NotificationQuery(
        order_id=order_id, customer_id=customer_id, status=status, event=event, limit=limit,
        offset=offset))


@router.post("/backorders/{line_id}/delay", status_code=202)
async def record_delay(line_id: uuid.UUID, body: DelayIn,
                       services: ServicesDep, audit: AuditDep) -> dict[str, str]:
    """Supply for a waiting line slipped: its customer is told."""
    event_id = await delays.record_delay(services.engine, line_id, body.reason,
                                         services.settings, hand_off=services.hand_off,
                                         audit=audit)
    return {"line_id": str(line_id), "event_id": event_id}
