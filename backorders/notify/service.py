"""Turning events into messages: gather the facts, route by preference, record the
message once, then send it on the first channel that takes it.

At most once per event: the store has one row per idempotency key and a sent row is
never sent again; a send cut short by a crash is retried with the same key per channel,
which the providers honour."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders import metrics
from backorders.contracts.activities import LineNotice, NotifyOutcome
from backorders.db import Direct, autocommit, direct_once, direct_transaction, query
from backorders.domain import queue
from backorders.models import PENDING_STAFF_ALERTS
from backorders.notify import store
from backorders.notify.channels import (
    LogChannel,
    Sender,
    SendGridEmail,
    TwilioSms,
    WebhookPush,
    send_with_retry,
)
from backorders.notify.message import Channel, DeliveryFailed, Event, Outgoing, Rendered
from backorders.notify.routing import (
    CUSTOMER_EVENTS,
    Preferences,
    route_customer,
    route_staff,
)
from backorders.notify.templates import (
    CustomerFacts,
    IntakeFacts,
    LineFacts,
    OptOut,
    ReceiptFacts,
    ShortageFacts,
    StockFacts,
    render,
)
from backorders.settings import Settings
from backorders.webhooks import push_secret

log = logging.getLogger(__name__)

FACT_TYPES = {"customer": CustomerFacts, "line": LineFacts, "stock": StockFacts,
              "receipt": ReceiptFacts, "intake": IntakeFacts, "shortage": ShortageFacts}


def _outcome(ids: list[int], statuses: list[str],
             send_after: datetime | None = None) -> NotifyOutcome:
    distinct = sorted(set(statuses))
    return NotifyOutcome(notification_ids=ids, status=",".join(distinct) or "none",
                         send_after=send_after)


def senders_from_settings(settings: Settings) -> dict[Channel, Sender]:
    """The providers with credentials; every other channel goes to the log."""
    senders: dict[Channel, Sender] = {Channel.LOG: LogChannel()}
    if settings.sendgrid_api_key is not None:
        senders[Channel.EMAIL] = SendGridEmail(
            settings.sendgrid_api_key.get_secret_value(), settings.notify_sender,
            host=settings.sendgrid_host)
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        senders[Channel.SMS] = TwilioSms(
            settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from, base_url=settings.twilio_base_url)
    if settings.push_webhook_url:
        senders[Channel.PUSH] = WebhookPush(settings.push_webhook_url, push_secret(settings))
    return senders


def _to_json(facts: Any) -> Any:
    if dataclasses.is_dataclass(facts) and not isinstance(facts, type):
        return {f.name: _to_json(getattr(facts, f.name)) for f in dataclasses.fields(facts)}
    if isinstance(facts, list):
        return [_to_json(f) for f in facts]
    if isinstance(facts, date | datetime):
        return facts.isoformat()
    return facts


def _from_json(cls: type, data: dict[str, Any]) -> Any:
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, str) and "date" in str(f.type) and "datetime" not in str(f.type):
            value = date.fromisoformat(value)
        values[f.name] = value
    return cls(**values)


_LINE = sa.text(
    f"""
    SELECT l.id, l.order_id, l.sku, l.customer_id, l.quantity, l.waiting_quantity,
           l.shipped_quantity, l.status, l.promised_date, l.expected_date,
           l.likely_date, l.latest_date,
           l.tier_rank, l.order_value, l.placed_at, l.seq,
           o.order_number, o.customer_email AS order_email, o.customer_phone AS order_phone,
           p.name AS product_name, p.allocation_policy,
           (SELECT a.tracking_number FROM allocations a
            WHERE a.line_id = l.id AND a.tracking_number IS NOT NULL
            ORDER BY a.dispatched_at DESC LIMIT 1) AS tracking_number,
           {store.RECIPIENT_COLUMNS}
    FROM order_lines l JOIN orders o ON o.id = l.order_id
    JOIN products p ON p.sku = l.sku
    {store.RECIPIENT_JOIN.format(customer_id="l.customer_id")}
    WHERE l.id = :id
    """
)


DUE_STAFF = sa.text(
    f"""
    SELECT id FROM notifications
    WHERE {PENDING_STAFF_ALERTS}
      AND coalesce((facts->>'lease_until')::timestamptz, '-infinity') < now()
    ORDER BY id LIMIT :n
    """
)
"""Staff alerts waiting for the relay; every worker asks once a poll interval, so the
partial index `ix_notifications_staff_pending` serves it (migration 0007)."""


class Notifier:
    def __init__(self, engine: AsyncEngine, settings: Settings,
                 senders: dict[Channel, Sender] | None = None, sleep: Any = None) -> None:
        self._engine = engine
        self._settings = settings
        self._senders = senders if senders is not None else senders_from_settings(settings)
        self._sleep = sleep

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def configured(self) -> frozenset[Channel]:
        return frozenset(self._senders) - {Channel.LOG}

    def _teams(self) -> dict[str, list[str]]:
        s = self._settings
        return {"sales": s.staff_sales, "purchasing": s.staff_purchasing,
                "account_team": s.staff_account_team}

    # --- line events ---------------------------------------------------------------------

    async def line_facts(self, conn: Direct, line_id: uuid.UUID,
                         notice: LineNotice) -> tuple[LineFacts, Any]:
        line = (await query(conn, _LINE, {"id": line_id}))[0]
        position = units_ahead = None
        if line.waiting_quantity > 0:
            # The line's own keys as values, so the SKU's queue index serves the scan
            # (a self-join let the planner hash the whole table).
            ahead = (await query(conn, sa.text(
                f"""
                SELECT count(*) AS lines, coalesce(sum(q.waiting_quantity), 0) AS units
                FROM order_lines q
                WHERE q.sku = :sku AND q.waiting_quantity > 0
                  AND {queue.ahead_of_values(line.allocation_policy)}
                """), {"sku": line.sku, **queue.key_values(line)}))[0]
            position, units_ahead = ahead.lines + 1, int(ahead.units)
        facts = LineFacts(
            order_number=line.order_number, sku=line.sku, product_name=line.product_name,
            quantity=line.quantity, backordered_quantity=line.waiting_quantity,
            shipped_quantity=line.shipped_quantity, status=line.status,
            queue_position=position, units_ahead=units_ahead,
            expected_date=line.expected_date if line.waiting_quantity > 0 else None,
            likely_date=line.likely_date if line.waiting_quantity > 0 else None,
            latest_date=line.latest_date if line.waiting_quantity > 0 else None,
            promised_date=line.promised_date,
            tracking_number=line.tracking_number, reason=notice.detail,
            days_waiting=notice.days_waiting,
            allocated_quantity=notice.quantity if notice.event == Event.ALLOCATED else 0,
            cancelled_quantity=notice.quantity if notice.event == Event.CANCELLED else 0,
        )
        return facts, line

    async def notify_line(self, notice: LineNotice,
                          holder: store.Holder = store.NOBODY) -> NotifyOutcome:
        """Record and (unless it must wait) send the message for one line event."""
        event = Event(notice.event)
        line_id = uuid.UUID(notice.line_id)
        # A repeat (an activity retried) finds its rows by key when it records them.
        facts, line = await direct_once(
            self._engine, lambda conn: self.line_facts(conn, line_id, notice))
        now = datetime.now(tz=notice.occurred_at.tzinfo)
        prefs = None
        if event in CUSTOMER_EVENTS:
            prefs, contact = store.recipient_of(line)  # read with the line's facts
            # A line's messages go to the contact its order gave.
            contact = dataclasses.replace(contact, email=line.order_email or contact.email,
                                          phone=line.order_phone or contact.phone)
            route = route_customer(
                event, prefs, contact, now,
                excluded_segments=set(self._settings.notify_excluded_segments),
                configured=self.configured, digest_hour=self._settings.notify_digest_hour)
            routes = [(notice.key, "customer", route)]
        else:
            routes = [(f"{notice.key}:{i}", "staff", r) for i, r in
                      enumerate(route_staff(event, self._teams(), self.configured))]

        async def record(conn: Direct) -> list[store.Recorded]:
            return [await store.record(
                conn, key=key, event=event.value, audience=audience, route=route,
                facts={"customer": {"id": line.customer_id, "name": None},
                       "line": _to_json(facts)},
                event_at=notice.occurred_at, customer_id=line.customer_id,
                order_id=line.order_id, line_id=line_id, sku=line.sku, claim=holder)
                for key, audience, route in routes]

        # One message needs no transaction around its single insert.
        recorded = await (direct_transaction if len(routes) > 1 else direct_once)(
            self._engine, record)
        statuses = []
        for r in recorded:
            # Preferences were read a moment ago, in this same attempt. A pending row
            # not claimed here was left by an attempt that did not finish.
            if r.claimed is not None or r.status == "pending":
                statuses.append(await self.deliver(r.id, prefs=prefs, claimed=r.claimed,
                                                    holder=holder))
            else:
                statuses.append(r.status)
        ids = [r.id for r in recorded]
        if all(r.created for r in recorded) and "queued" not in statuses:
            return _outcome(ids, statuses)
        return await self.outcome(ids)

    async def outcome(self, ids: list[int]) -> NotifyOutcome:
        rows = [await store.get(self._engine, i) for i in ids]
        waiting = [r.send_after for r in rows
                   if r is not None and r.status == "queued" and not r.facts.get("digest")]
        return _outcome(ids, [r.status for r in rows if r is not None],
                        min(waiting) if waiting else None)

    # --- sending -------------------------------------------------------------------------

    def _render(self, row: Any, channel: Channel) -> Rendered:
        facts = row.facts
        kwargs: dict[str, Any] = {}
        for name, cls in FACT_TYPES.items():
            if facts.get(name) is not None:
                kwargs[name] = _from_json(cls, facts[name])
        if facts.get("lines") is not None:
            kwargs["lines"] = [_from_json(LineFacts, f) for f in facts["lines"]]
        event = Event(row.event)
        if row.audience == "customer":
            kwargs["opt_out"] = self._opt_out(row.customer_id, channel)
        return render(event, channel, **kwargs)

    def _opt_out(self, customer_id: str, channel: Channel) -> OptOut:
        secret = self._settings.notify_secret.get_secret_value()
        token = store.opt_out_token(secret, customer_id, channel.value)
        url = (f"{self._settings.public_base_url.rstrip('/')}/customers/{customer_id}"
               f"/opt-out?channel={channel.value}&token={token}")
        return OptOut(url=url, keyword="STOP")

    async def deliver(self, notification_id: int, *, prefs: Preferences | None = None,
                      claimed: Any | None = None, holder: store.Holder = store.NOBODY) -> str:
        """Send on the first channel that takes the message, falling back in order.
        `prefs`: the customer's preferences if just read; otherwise they are read again,
        as they may have changed while the message was queued. `claimed`: the row, if
        the caller recorded it with its lease already on it."""
        row = claimed if claimed is not None else await store.claim(
            self._engine, notification_id, holder)
        if row is None:
            current = await store.get(self._engine, notification_id)
            return current.status if current is not None else "missing"
        if row.audience == "customer":
            if prefs is None:
                customer_id = row.customer_id
                prefs, _ = await direct_once(
                    self._engine, lambda conn: store.load_recipient(conn, customer_id))
            attempts = [a for a in store.attempts_of(row) if a.channel not in prefs.opted_out]
            if not attempts:
                await store.finish(self._engine, notification_id, status="suppressed",
                                   attempt_log=[], reason="opted out before it was sent")
                metrics.recorder().notification("none", "suppressed")
                return "suppressed"
        else:
            attempts = store.attempts_of(row)
        log_entries: list[dict[str, Any]] = []
        for attempt in attempts:
            rendered = self._render(row, attempt.channel)
            sender = self._senders.get(attempt.via, self._senders[Channel.LOG])
            message = Outgoing(
                idempotency_key=f"{row.idempotency_key}:{attempt.channel.value}",
                channel=attempt.channel, to=attempt.to, subject=rendered.subject,
                text=rendered.text, html=rendered.html)
            try:
                kwargs: dict[str, Any] = {"attempts": self._settings.notify_send_attempts,
                                          "max_delay": self._settings.notify_max_retry_seconds}
                if self._sleep is not None:
                    kwargs["sleep"] = self._sleep
                delivery = await send_with_retry(sender, message, **kwargs)
            except DeliveryFailed as exc:
                log_entries.append({"channel": attempt.channel.value, "via": attempt.via.value,
                                    "to": attempt.to, "error": str(exc), "status": exc.status,
                                    "at": datetime.now().astimezone().isoformat()})
                log.warning("notification %s (%s) failed on %s: %s; %s", notification_id,
                            row.event, attempt.channel.value, exc,
                            "falling back" if attempt is not attempts[-1] else "giving up")
                continue
            log_entries.append({"channel": attempt.channel.value, "via": attempt.via.value,
                                "to": attempt.to, "result": "sent",
                                "at": datetime.now().astimezone().isoformat()})
            alert_seconds = await store.finish(
                self._engine, notification_id, status="sent", attempt_log=log_entries,
                channel=attempt.channel.value, recipient=attempt.to, subject=rendered.subject,
                body_text=rendered.text, body_html=rendered.html,
                provider_id=delivery.provider_id)
            metrics.recorder().notification(attempt.channel.value, "sent")
            if alert_seconds is not None:
                metrics.recorder().time_to_alert(alert_seconds)
            log.info("notification %s (%s) sent to %s by %s", notification_id, row.event,
                     attempt.to, attempt.via.value)
            return "sent"
        await store.finish(self._engine, notification_id, status="failed",
                           attempt_log=log_entries,
                           reason="every channel failed: " + "; ".join(
                               f"{e['channel']}: {e['error']}" for e in log_entries))
        metrics.recorder().notification(attempts[-1].channel.value if attempts else "none",
                                        "failed")
        return "failed"

    # --- digests -------------------------------------------------------------------------

    async def send_digest(self, customer_id: str, send_at: datetime,
                          holder: store.Holder = store.NOBODY) -> int | None:
        """One message with every update queued for the customer's digest up to now."""
        key = f"digest:{customer_id}:{send_at.isoformat()}"
        async with self._engine.begin() as conn:
            items = (await conn.execute(sa.text(
                """
                SELECT * FROM notifications
                WHERE customer_id = :c AND status = 'queued' AND (facts->>'digest')::boolean
                  AND send_after <= :at
                ORDER BY event_at, id FOR UPDATE SKIP LOCKED
                """), {"c": customer_id, "at": send_at})).all()
            if not items:
                existing = (await conn.execute(sa.text(
                    "SELECT id FROM notifications WHERE idempotency_key = :k"),
                    {"k": key})).scalar_one_or_none()
                if existing is None:
                    return None
                digest_id = existing
            else:
                prefs, contact = await store.load_recipient(conn, customer_id)
                route = route_customer(
                    Event.DIGEST, prefs, contact, send_at,
                    excluded_segments=set(self._settings.notify_excluded_segments),
                    configured=self.configured, digest_hour=self._settings.notify_digest_hour)
                if route.status == "queued":  # quiet hours at digest time: send anyway
                    route = dataclasses.replace(route, status="pending", send_after=None,
                                                reason=None)
                lines = [dict(item.facts["line"], status=item.facts["line"]["status"],
                              reason=item.facts["line"].get("reason")) for item in items]
                recorded = await store.record(
                    conn, key=key, event=Event.DIGEST.value, audience="customer", route=route,
                    facts={"customer": {"id": customer_id, "name": None}, "lines": lines,
                           "events": [i.event for i in items]},
                    event_at=send_at, customer_id=customer_id)
                digest_id = recorded.id
                await conn.execute(sa.text(
                    "UPDATE notifications SET status = 'digested', digest_id = :d "
                    "WHERE id = ANY(:ids)"), {"d": digest_id, "ids": [i.id for i in items]})
        current = await store.get(self._engine, digest_id)
        if current is not None and current.status == "pending":
            await self.deliver(digest_id, holder=holder)
        return digest_id

    # --- staff alerts --------------------------------------------------------------------

    async def deliver_due_staff(self, limit: int = 50) -> int:
        """Staff alerts recorded by intake and receipts, sent by the worker's relay."""
        async with autocommit(self._engine).connect() as conn:
            ids = (await conn.execute(DUE_STAFF, {"n": limit})).scalars().all()
        for notification_id in ids:
            await self.deliver(notification_id)
        return len(ids)


async def relay_staff_alerts(notifier: Notifier, stop: asyncio.Event, every: float) -> None:
    """Runs in every worker beside the outbox relay: sends the staff alerts that intake
    and receipts recorded in their own transactions."""
    while not stop.is_set():
        try:
            await notifier.deliver_due_staff()
        except Exception:
            log.exception("staff alert relay failed; retrying")
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass


async def record_staff_alert(
    conn: Any,
    settings: Settings,
    event: Event,
    *,
    key: str,
    sku: str | None,
    stock: StockFacts | None = None,
    receipt: ReceiptFacts | None = None,
    intake: IntakeFacts | None = None,
    shortage: ShortageFacts | None = None,
) -> None:
    """Record an internal alert in the caller's transaction; the worker sends it."""
    teams = {"sales": settings.staff_sales, "purchasing": settings.staff_purchasing,
             "account_team": settings.staff_account_team}
    configured = frozenset({Channel.EMAIL}) if settings.sendgrid_api_key else frozenset()
    facts: dict[str, Any] = {}
    if stock is not None:
        facts["stock"] = _to_json(stock)
    if receipt is not None:
        facts["receipt"] = _to_json(receipt)
    if intake is not None:
        facts["intake"] = _to_json(intake)
    if shortage is not None:
        facts["shortage"] = _to_json(shortage)
    now = datetime.now().astimezone()
    for i, route in enumerate(route_staff(event, teams, configured)):
        await store.record(conn, key=f"{key}:{i}", event=event.value, audience="staff",
                           route=route, facts=facts, event_at=now, sku=sku)


async def cooled_down(conn: Any, sku: str, kind: str, hours: float) -> datetime | None:
    """When this alert has not fired within `hours`: the time it fires now (the clock
    restarts); otherwise None."""
    return (await conn.execute(sa.text(
        """
        INSERT INTO staff_alert_state (sku, kind, fired_at) VALUES (:sku, :kind, now())
        ON CONFLICT (sku, kind) DO UPDATE SET fired_at = now()
        WHERE staff_alert_state.fired_at < now() - make_interval(secs => :secs)
        RETURNING fired_at
        """), {"sku": sku, "kind": kind, "secs": hours * 3600})).scalar_one_or_none()
