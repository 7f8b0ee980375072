"""The notification store in PostgreSQL: preferences, one row per message (keyed by its
idempotency key, so an event is recorded and sent at most once), and the lease that
keeps two workers from sending the same message at the same moment. Storage only: rows
in and rows out; the preferences API (schemas, refusals) is `services.preferences`."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import Direct, autocommit, direct_one, query
from backorders.notify.message import Channel
from backorders.notify.routing import Attempt, Contact, Preferences, Route

LEASE_SECONDS = 120
"""How long a sender holds a message before another may take it over (it crashed)."""
LEASE_KEYS = "{lease_until,lease_holder,lease_attempt}"
_LEASE = """jsonb_build_object(
    'lease_until', now() + make_interval(secs => :lease),
    'lease_holder', CAST(:holder AS text),
    'lease_attempt', CAST(:attempt AS int))"""
"""The lease a sender puts in a message's facts (`LEASE_KEYS`), from `_lease_params`."""


@dataclass(frozen=True)
class Holder:
    """Who holds a message's lease: an activity (its run and activity id) and its attempt.
    Temporal starts attempt n+1 only once attempt n has failed or timed out, so a later
    attempt of the same activity takes over at once what an earlier one left leased (a
    send cut off by a database or network outage) instead of waiting out the lease."""
    name: str = ""
    attempt: int = 0


NOBODY = Holder()
"""A sender outside any activity: its lease is released by finishing or by running out."""


# --- preferences -----------------------------------------------------------------------


RECIPIENT_COLUMNS = """cu.email, cu.phone, cp.channels, cp.digest, cp.timezone, cp.quiet_start,
    cp.quiet_end, cp.opted_out, cp.segments, cp.push_token, cp.app_active_until"""
"""A customer's contact and preferences, read beside other facts (`recipient_of`) with
`RECIPIENT_JOIN` on the customer id."""
RECIPIENT_JOIN = """LEFT JOIN customers cu ON cu.id = {customer_id}
    LEFT JOIN customer_preferences cp ON cp.customer_id = cu.id"""

_RECIPIENT = sa.text(
    f"""
    SELECT {RECIPIENT_COLUMNS}
    FROM (SELECT CAST(:id AS text) AS id) k {RECIPIENT_JOIN.format(customer_id="k.id")}
    """
)


def recipient_of(row: Any) -> tuple[Preferences, Contact]:
    """Preferences and contact from a row carrying `RECIPIENT_COLUMNS`; the defaults for
    a customer we have no row for."""
    contact = Contact(email=row.email, phone=row.phone, push_token=row.push_token)
    if row.channels is None:
        return Preferences(), contact
    return Preferences(
        channels=tuple(Channel(c) for c in row.channels),
        digest=row.digest,
        timezone=row.timezone,
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        opted_out=frozenset(Channel(c) for c in row.opted_out),
        segments=frozenset(row.segments),
        app_active_until=row.app_active_until,
    ), contact


async def load_recipient(conn: AsyncConnection | Direct,
                         customer_id: str) -> tuple[Preferences, Contact]:
    return recipient_of((await query(conn, _RECIPIENT, {"id": customer_id}))[0])


_KNOWN = sa.text("SELECT 1 FROM customers WHERE id = :id")


async def customer_known(conn: AsyncConnection, customer_id: str) -> bool:
    return (await conn.execute(_KNOWN, {"id": customer_id})).scalar_one_or_none() is not None


_PREFERENCES = sa.text("SELECT * FROM customer_preferences WHERE customer_id = :id")


async def preferences_row(conn: AsyncConnection, customer_id: str) -> Any | None:
    """The customer's stored preferences; None when they have set none (the defaults)."""
    return (await conn.execute(_PREFERENCES, {"id": customer_id})).one_or_none()


_ENSURE_CUSTOMER = sa.text("INSERT INTO customers (id) VALUES (:id) ON CONFLICT DO NOTHING")
_SAVE_PREFERENCES = sa.text(
    """
    INSERT INTO customer_preferences (customer_id, channels, digest, timezone,
        quiet_start, quiet_end, opted_out, segments, push_token, app_active_until)
    VALUES (:id, :channels, :digest, :tz, :qs, :qe, :opted_out, :segments, :push,
            :active)
    ON CONFLICT (customer_id) DO UPDATE SET
        channels = EXCLUDED.channels, digest = EXCLUDED.digest,
        timezone = EXCLUDED.timezone, quiet_start = EXCLUDED.quiet_start,
        quiet_end = EXCLUDED.quiet_end, opted_out = EXCLUDED.opted_out,
        segments = EXCLUDED.segments, push_token = EXCLUDED.push_token,
        app_active_until = EXCLUDED.app_active_until, updated_at = now()
    RETURNING *
    """
)


_CURRENT_OPT_OUTS = sa.text(
    "SELECT opted_out FROM customer_preferences WHERE customer_id = :id FOR UPDATE")
_RECORD_OPT_OUTS = sa.text(
    """
    INSERT INTO opt_outs (customer_id, channel, source)
    SELECT :id, c, :source FROM unnest(CAST(:channels AS text[])) c
    WHERE NOT c = ANY(CAST(:before AS text[]))
    """
)


_MESSAGED = sa.text("SELECT 1 FROM notifications WHERE customer_id = :id LIMIT 1")


async def record_opt_outs(conn: AsyncConnection, customer_id: str, channels: list[str],
                          source: str) -> None:
    """Date the channels the customer is leaving now (not those already left), before
    their preferences row is changed; the row is locked until the change commits. A
    customer's first preferences, set before we ever wrote to them (a shop syncing its
    sign-ups), leave nothing: they opted out of nothing we sent."""
    before = (await conn.execute(_CURRENT_OPT_OUTS, {"id": customer_id})).scalar_one_or_none()
    if before is None and source == "preferences" and (
            await conn.execute(_MESSAGED, {"id": customer_id})).first() is None:
        return
    if set(channels) - set(before or ()):
        await conn.execute(_RECORD_OPT_OUTS, {"id": customer_id, "channels": channels,
                                              "source": source, "before": list(before or ())})


async def save_preferences(
    conn: AsyncConnection,
    customer_id: str,
    *,
    channels: list[str],
    digest: str,
    timezone: str,
    quiet_start: time | None,
    quiet_end: time | None,
    opted_out: list[str],
    segments: list[str],
    push_token: str | None,
    app_active_until: datetime | None,
) -> Any:
    """Replace the customer's preferences and return the stored row; a customer not seen
    in an order yet is created, so a shop can set preferences at sign-up."""
    await conn.execute(_ENSURE_CUSTOMER, {"id": customer_id})
    await record_opt_outs(conn, customer_id, opted_out, "preferences")
    return (await conn.execute(_SAVE_PREFERENCES, {
        "id": customer_id, "channels": channels, "digest": digest, "tz": timezone,
        "qs": quiet_start, "qe": quiet_end, "opted_out": opted_out, "segments": segments,
        "push": push_token, "active": app_active_until,
    })).one()


# --- opt-out links ---------------------------------------------------------------------


def opt_out_token(secret: str, customer_id: str, channel: str) -> str:
    return hmac.new(secret.encode(), f"{customer_id}:{channel}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def opt_out_valid(secret: str, customer_id: str, channel: str, token: str) -> bool:
    return hmac.compare_digest(opt_out_token(secret, customer_id, channel), token)


async def opt_out(conn: AsyncConnection, customer_id: str, channel: Channel,
                  source: str = "link") -> bool:
    """Honoured at once: every later send reads preferences afresh."""
    if not await customer_known(conn, customer_id):
        return False
    await record_opt_outs(conn, customer_id, [channel.value], source)
    await conn.execute(sa.text(
        """
        INSERT INTO customer_preferences (customer_id, opted_out) VALUES (:id, ARRAY[:ch])
        ON CONFLICT (customer_id) DO UPDATE
        SET opted_out = (SELECT array_agg(DISTINCT c) FROM
                         unnest(customer_preferences.opted_out || ARRAY[:ch]) c),
            updated_at = now()
        """), {"id": customer_id, "ch": channel.value})
    return True


async def opt_out_phone(conn: AsyncConnection, phone: str) -> list[str]:
    """An SMS keyword reply: opt every customer with that number out of SMS."""
    ids = (await conn.execute(sa.text("SELECT id FROM customers WHERE phone = :p ORDER BY id"),
                              {"p": phone})).scalars().all()
    for customer_id in ids:
        await opt_out(conn, customer_id, Channel.SMS, "sms keyword")
    return list(ids)


# --- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    id: int
    status: str
    send_after: datetime | None
    created: bool
    claimed: Any | None = None
    """The new row, when it was recorded already claimed for sending by the caller."""


def _attempts_json(route: Route) -> list[dict[str, str]]:
    return [{"channel": a.channel.value, "to": a.to, "via": a.via.value} for a in route.attempts]


def attempts_of(row: Any) -> list[Attempt]:
    return [Attempt(Channel(a["channel"]), a["to"], Channel(a["via"]))
            for a in row.facts.get("attempts", [])]


def _lease_params(holder: Holder) -> dict[str, Any]:
    return {"lease": LEASE_SECONDS, "holder": holder.name, "attempt": holder.attempt}


_RECORD = sa.text(
    f"""
    INSERT INTO notifications (idempotency_key, event, audience, customer_id, order_id,
        line_id, sku, status, reason, channels, facts, event_at, send_after)
    VALUES (:key, :event, :audience, :customer_id, :order_id, :line_id, :sku, :status,
            :reason, :channels,
            CAST(:facts AS jsonb) || CASE WHEN :claim AND :status = 'pending'
                THEN {_LEASE} ELSE '{{}}'::jsonb END,
            :event_at, :send_after)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING *
    """
)
_RECORDED = sa.text("SELECT id, status, send_after FROM notifications WHERE idempotency_key = :key")


async def record(
    conn: AsyncConnection | Direct,
    *,
    key: str,
    event: str,
    audience: str,
    route: Route,
    facts: dict[str, Any],
    event_at: datetime,
    customer_id: str | None = None,
    order_id: uuid.UUID | None = None,
    line_id: uuid.UUID | None = None,
    sku: str | None = None,
    claim: Holder | None = None,
) -> Recorded:
    """Insert the message once; a second call with the same key returns the first.
    `claim`: a new message to send now is inserted with this holder's lease already on
    it, as `claim` would put it (saves a round trip per message)."""
    facts = {**facts, "attempts": _attempts_json(route), "digest": route.digest}
    inserted = await query(conn, _RECORD, {
        "key": key, "event": event, "audience": audience, "customer_id": customer_id,
        "order_id": order_id, "line_id": line_id, "sku": sku, "status": route.status,
        "reason": route.reason, "channels": [a.channel.value for a in route.attempts],
        "facts": json.dumps(facts, default=str), "event_at": event_at,
        "send_after": route.send_after, "claim": claim is not None,
        **_lease_params(claim or NOBODY),
    })
    if inserted:
        row = inserted[0]
        claimed = row if claim is not None and row.status == "pending" else None
        return Recorded(row.id, row.status, row.send_after, created=True, claimed=claimed)
    row = (await query(conn, _RECORDED, {"key": key}))[0]
    return Recorded(row.id, row.status, row.send_after, created=False)


_CLAIM = sa.text(
    f"""
    UPDATE notifications
    SET facts = facts || {_LEASE}
    WHERE id = :id AND status IN ('pending', 'queued')
      AND (coalesce((facts->>'lease_until')::timestamptz, '-infinity') < now()
           OR (CAST(:holder AS text) <> '' AND facts->>'lease_holder' = :holder
               AND (facts->>'lease_attempt')::int < CAST(:attempt AS int)))
    RETURNING *
    """
)


async def claim(engine: AsyncEngine, notification_id: int,
                holder: Holder = NOBODY) -> Any | None:
    """Take the message for sending unless it was sent, suppressed, failed or digested,
    or another sender holds a live lease on it (an earlier attempt of the same activity
    does not count: it is over)."""
    return await direct_one(engine, _CLAIM, {"id": notification_id, **_lease_params(holder)})


_GET = sa.text("SELECT * FROM notifications WHERE id = :id")


async def get(engine: AsyncEngine, notification_id: int) -> Any | None:
    return await direct_one(engine, _GET, {"id": notification_id})


ALERT_ALLOCATION = ("a.id = CASE WHEN n.event = 'allocated' "
                    "THEN CAST(split_part(n.idempotency_key, ':', 3) AS uuid) END")
"""Joins an `allocated` message `n` to its allocation `a` by primary key: the message's
key is `<line>:allocated:<allocation>` (other events' keys are not read as ids), and the
allocation's created_at is its transaction's."""
TIMED_ALERT = ("n.event = 'allocated' AND n.audience = 'customer' AND n.status = 'sent' "
               "AND n.send_after IS NULL")
"""The messages time to alert is measured on: quiet hours or a digest (`send_after`)
held the others, and that wait was the customer's, not ours."""

_FINISH = sa.text(
    f"""
    UPDATE notifications n
    SET status = :status, reason = coalesce(:reason, reason),
        channel = :channel, recipient = :recipient, subject = :subject,
        body_text = :text, body_html = :html, provider_id = :provider_id,
        attempts = attempts + jsonb_array_length(CAST(:log AS jsonb)),
        attempt_log = attempt_log || CAST(:log AS jsonb),
        sent_at = CASE WHEN :status = 'sent' THEN now() END,
        failed_at = CASE WHEN :status = 'failed' THEN now() END,
        facts = facts - CAST(:lease_keys AS text[])
    WHERE id = :id
    RETURNING n.id, CASE WHEN {TIMED_ALERT} THEN (
        SELECT extract(epoch FROM n.sent_at - a.created_at) FROM allocations a
        WHERE {ALERT_ALLOCATION}) END AS alert_seconds
    """
)


async def finish(
    engine: AsyncEngine,
    notification_id: int,
    *,
    status: str,
    attempt_log: list[dict[str, Any]],
    reason: str | None = None,
    channel: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    body_text: str | None = None,
    body_html: str | None = None,
    provider_id: str | None = None,
) -> float | None:
    """Record how a notification ended; for a timed alert (`TIMED_ALERT`) sent now, the
    seconds since its allocation."""
    row = await direct_one(engine, _FINISH, {
        "id": notification_id, "status": status, "reason": reason,
        "channel": channel, "recipient": recipient, "subject": subject,
        "text": body_text, "html": body_html, "provider_id": provider_id,
        "log": json.dumps(attempt_log, default=str), "lease_keys": LEASE_KEYS,
    })
    return float(row.alert_seconds) if row is not None and row.alert_seconds is not None \
        else None


NOTIFICATION_COLUMNS = (
    "id, idempotency_key, event, audience, customer_id, order_id, line_id, sku, status, "
    "reason, channels, channel, recipient, subject, body_text, attempts, attempt_log, "
    "provider_id, digest_id, event_at, created_at, send_after, sent_at, failed_at"
)


@dataclass(frozen=True)
class NotificationQuery:
    """Which messages to list (each filter given must match), in the order they were
    recorded, a page at a time."""
    order_id: uuid.UUID | None = None
    customer_id: str | None = None
    status: str | None = None
    event: str | None = None
    limit: int = 100
    offset: int = 0


async def list_notifications(engine: AsyncEngine,
                             query: NotificationQuery) -> tuple[list[Any], int]:
    """A page of messages and how many match in all."""
    where, params = ["true"], {"limit": query.limit, "offset": query.offset}
    for column, value in (("order_id", query.order_id), ("customer_id", query.customer_id),
                          ("status", query.status), ("event", query.event)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    async with autocommit(engine).connect() as conn:
        rows = (await conn.execute(sa.text(
            f"""
            SELECT {NOTIFICATION_COLUMNS}, count(*) OVER () AS total
            FROM notifications WHERE {" AND ".join(where)}
            ORDER BY created_at, id LIMIT :limit OFFSET :offset
            """), params)).all()
    return list(rows), (rows[0].total if rows else 0)
