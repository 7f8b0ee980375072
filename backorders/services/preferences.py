"""Customer notification preferences and opt-outs, as the API reads and writes them:
replacing and reading preferences, the signed opt-out link, and the SMS STOP keyword.
The rows live in `notify.store`; this converts them to and from the API's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.db import autocommit
from backorders.domain.access import Caller
from backorders.notify import store
from backorders.notify.message import Channel
from backorders.schemas import PreferencesIn, PreferencesOut, QuietHours
from backorders.services import unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Forbidden, NotFound
from backorders.services.unit_of_work import UnitOfWork
from backorders.settings import Settings

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
"""An inbound SMS whose first word is one of these opts its number out of SMS."""


def _unknown_customer(customer_id: str) -> NotFound:
    return NotFound("unknown_customer", f"no customer {customer_id!r}", field="customer_id")


def _preferences_out(customer_id: str, row: Any) -> PreferencesOut:
    if row is None:
        defaults = PreferencesIn()
        return PreferencesOut(customer_id=customer_id, channels=defaults.channels,
                              digest=defaults.digest, timezone=defaults.timezone,
                              quiet_hours=None, opted_out=[], segments=[], push_token=None,
                              app_active_until=None, updated_at=datetime.now().astimezone())
    quiet = (QuietHours(start=row.quiet_start, end=row.quiet_end)
             if row.quiet_start is not None and row.quiet_end is not None else None)
    return PreferencesOut(
        customer_id=customer_id, channels=list(row.channels), digest=row.digest,
        timezone=row.timezone, quiet_hours=quiet, opted_out=list(row.opted_out),
        segments=list(row.segments), push_token=row.push_token,
        app_active_until=row.app_active_until, updated_at=row.updated_at)


async def put_preferences(engine: AsyncEngine, customer_id: str, body: PreferencesIn,
                          settings: Settings, *, audit: Audit | None = None) -> PreferencesOut:
    """Replace the customer's preferences; a customer not seen in an order yet is
    created, so a shop can set preferences at sign-up."""
    quiet = body.quiet_hours

    async def work(uow: UnitOfWork) -> Any:
        return await store.save_preferences(
            uow.conn, customer_id, channels=list(body.channels), digest=body.digest,
            timezone=body.timezone, quiet_start=quiet.start if quiet else None,
            quiet_end=quiet.end if quiet else None, opted_out=list(body.opted_out),
            segments=list(body.segments), push_token=body.push_token,
            app_active_until=body.app_active_until)

    row = await unit_of_work.run(engine, settings, work, audit=audit)
    return _preferences_out(customer_id, row)


async def get_preferences(engine: AsyncEngine, customer_id: str) -> PreferencesOut:
    async with autocommit(engine).connect() as conn:
        if not await store.customer_known(conn, customer_id):
            raise _unknown_customer(customer_id)
        row = await store.preferences_row(conn, customer_id)
    return _preferences_out(customer_id, row)


OPT_OUT_LINK = Caller(name="opt-out link")
SMS_WEBHOOK = Caller(name="sms webhook")
"""Who the audit trail names for changes that come with their own proof, not a key."""


async def opt_out_by_link(engine: AsyncEngine, settings: Settings, customer_id: str,
                          channel: str, token: str, *, path: str) -> None:
    """The link at the foot of every message: opts the customer out of that channel,
    if the link's token was signed for that customer and channel."""
    secret = settings.notify_secret.get_secret_value()
    if not store.opt_out_valid(secret, customer_id, channel, token):
        raise Forbidden("invalid_token", "this opt-out link is not valid", field="token")

    async def work(uow: UnitOfWork) -> None:
        if not await store.opt_out(uow.conn, customer_id, Channel(channel)):
            raise _unknown_customer(customer_id)

    audit = Audit(OPT_OUT_LINK, "GET", path, resource=customer_id, detail=f"opted out of {channel}")
    await unit_of_work.run(engine, settings, work, audit=audit)


async def sms_reply(engine: AsyncEngine, settings: Settings, sender: str, text: str, *,
                    path: str) -> list[str] | None:
    """An inbound SMS: a STOP keyword opts that number out of SMS at once. Returns the
    customers opted out, or None when the message is not a STOP keyword."""
    sender = sender.strip()
    words = text.strip().upper().split()
    if not (sender and words and words[0] in STOP_WORDS):
        return None
    audit = Audit(SMS_WEBHOOK, "POST", path, detail="STOP: opted out of sms")

    async def work(uow: UnitOfWork) -> list[str]:
        customers = await store.opt_out_phone(uow.conn, sender)
        if uow.audit is not None:
            uow.audit.resource = ",".join(customers)[:128] or None
        return customers

    return await unit_of_work.run(engine, settings, work, audit=audit)
