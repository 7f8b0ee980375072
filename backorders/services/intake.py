"""The one entry flow for platform orders: prove the sender, convert its payload, check the
channel's rules, place the order, and record how every payload ended, exactly once.

- **accepted**: the intake row is written in the order's own transaction, so an order
  and its intake never disagree.
- **rejected**: the sender's fault (bad signature, unreadable payload, a rule broken, an
  order that conflicts); answered 4xx with the field, recorded with the reason.
- **dead**: not the sender's fault, or fixable by ops (a SKU we do not know yet, the
  database unavailable): answered 202 and parked with the error; ops replay it, one by
  one or by reason once the cause is fixed. A platform's redelivery of a payload (same
  delivery id) is answered as the first delivery was, and counted, never taken twice."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders import logs
from backorders.domain.access import Caller
from backorders.domain.customers import TIER_RANK, Tier
from backorders.intake import edi850, marketplace, rules, shopify, woocommerce
from backorders.intake.mapping import Context, MappingError
from backorders.notify.templates import IntakeFacts
from backorders.schemas import IntakeOut, IntakePage, OrderIn
from backorders.services import alerts, channels, orders, unit_of_work
from backorders.services.audit import Audit
from backorders.services.channels import ChannelConfig
from backorders.services.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.settings import Settings
from backorders.webhooks import WebhookRejected, verify_hmac_sha256

log = logging.getLogger(__name__)

PLATFORMS: dict[str, ModuleType] = {
    "shopify": shopify, "woocommerce": woocommerce, "marketplace": marketplace,
    "edi850": edi850}
"""Each platform kind's mapping module: its signature and delivery headers, `decode`
(the body as the platform's document) and `to_order`; `delivery_of` where the document
names its own delivery."""

FIXABLE = frozenset({"unknown_sku"})
"""Refusals that are not the sender's fault but ours to fix (create the product): parked
as dead for a replay, not rejected."""

RETRY_BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
                 timedelta(hours=1), timedelta(hours=4))
"""When a dead intake whose cause was transient is tried again, by attempt; after the
last it waits for ops."""

RETRIER = Caller(name="intake retry")
"""Who the audit trail names for the worker's automatic retries."""


@dataclass
class Outcome:
    intake_id: int
    state: str
    order_id: uuid.UUID | None = None
    order_number: str | None = None
    duplicate: bool = False
    error: DomainError | None = None
    """What a rejected or dead intake was refused with."""
    document: str | None = None
    """The answer in the platform's own format, where it has one (an EDI 997)."""

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"intake_id": self.intake_id, "state": self.state}
        if self.order_id is not None:
            out |= {"order_id": str(self.order_id), "order_number": self.order_number}
        if self.duplicate:
            out["duplicate"] = True
        if self.error is not None:
            out |= {"reason": self.error.code, "message": self.error.message,
                    "field": self.error.field}
        return out


class Rejected(Exception):
    """An intake refused as the sender's fault: the route answers `error` with the id."""

    def __init__(self, outcome: Outcome, error: DomainError) -> None:
        super().__init__(error.message)
        self.outcome = outcome
        self.error = error


@dataclass(frozen=True)
class Received:
    channel: ChannelConfig
    body: bytes
    content_type: str | None
    delivery_id: str | None
    signature: str

    @property
    def body_hash(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def webhook_caller(channel: str) -> Caller:
    """Who the audit trail names for an order a platform's signed webhook placed."""
    return Caller(name=f"{channel} webhook")


# --- receiving ------------------------------------------------------------------------------


async def receive(engine: AsyncEngine, settings: Settings, name: str, body: bytes,
                  headers: Mapping[str, str], *, path: str,
                  hand_off: HandOff | None = None) -> Outcome:
    channel = await channels.load(engine, settings, name)
    if channel is None:
        raise NotFound("unknown_channel", f"no channel {name!r}", field="name")
    module = PLATFORMS.get(channel.kind)
    if module is None:
        raise Invalid("not_a_webhook_channel", f"channel {name!r} is {channel.kind}: its orders "
                      "come through POST /orders with the channel's API key", field="name")
    content_type = headers.get("content-type")
    presented = headers.get(module.SIGNATURE_HEADER)
    if channel.kind == "woocommerce" and woocommerce.is_ping(body) and not presented:
        return await _record_end(engine, settings, Received(channel, b"", content_type, None,
                                                            "missing"),
                                 "accepted", reason="ping", message="webhook created")
    try:
        assert channel.secret is not None
        verify_hmac_sha256(channel.secret, body, presented, header=module.SIGNATURE_HEADER)
    except WebhookRejected as exc:
        # Counted in the channel's health; nothing of the payload is kept.
        await _record_end(engine, settings, Received(channel, b"", content_type, None,
                                                     "missing" if presented is None else "invalid"),
                          "rejected", reason="bad_signature", message=exc.message,
                          keep_body=False)
        raise Unauthorized("bad_signature", exc.message) from None
    delivery_id = (headers.get(module.DELIVERY_HEADER) or "").strip()[:200] or None
    if delivery_id is None and hasattr(module, "delivery_of"):
        delivery_id = module.delivery_of(body)
    received = Received(channel, body, content_type, delivery_id, "valid")
    try:
        outcome = None
        if delivery_id is not None:
            outcome = await _redelivered(engine, channel.name, delivery_id)
        if outcome is None:
            outcome = await _process(engine, settings, received, path=path, hand_off=hand_off)
    except Rejected as exc:
        exc.outcome.document = _acknowledgement(channel, body, exc.outcome)
        raise
    outcome.document = _acknowledgement(channel, body, outcome)
    return outcome


def _acknowledgement(channel: ChannelConfig, body: bytes, outcome: Outcome) -> str | None:
    """EDI buyers get the 997: read (A, whether taken in or parked) or not (R)."""
    if channel.kind != "edi850":
        return None
    try:
        interchange = edi850.decode(body).interchange
    except MappingError:
        return None  # not an interchange at all: nothing to acknowledge it with
    return edi850.ack_997(interchange, accepted=outcome.state != "rejected",
                          control=outcome.intake_id)


async def acknowledgement_855(engine: AsyncEngine, channel: str, intake_id: int) -> str:
    """The 855 for an EDI intake's order, as the order stands now: each line accepted,
    backordered, or partly shipped with the balance backordered, with expected dates."""
    from backorders.services import views

    async with engine.connect() as conn:
        row = (await conn.execute(sa.text(
            "SELECT body, order_id, state FROM intakes WHERE id = :id AND channel = :c"),
            {"id": intake_id, "c": channel})).one_or_none()
    if row is None or row.body is None:
        raise NotFound("unknown_intake", f"no intake {intake_id} from channel {channel!r}",
                       field="intake_id")
    if row.order_id is None:
        raise Conflict("not_accepted", f"intake {intake_id} is {row.state}: no order to "
                       "acknowledge yet", field="intake_id")
    interchange = edi850.decode(bytes(row.body)).interchange
    order = await views.get_order(engine, row.order_id)
    lines = [edi850.LineAck(quantity=ln.quantity, unit_price=f"{ln.unit_price.normalize():f}",
                            sku=ln.sku, from_stock=ln.fulfillable_quantity,
                            backordered=ln.quantity - ln.fulfillable_quantity,
                            expected=ln.expected_date)
             for ln in order.lines]
    return edi850.ack_855(interchange, order.order_number, lines, control=intake_id)


async def _redelivered(engine: AsyncEngine, channel: str, delivery_id: str) -> Outcome | None:
    """The earlier delivery's outcome, with this one counted on it; None for a first
    delivery (looked up without writing, so a first delivery costs no extra commit)."""
    async with engine.connect() as conn:
        seen = (await conn.execute(sa.text(
            "SELECT 1 FROM intakes WHERE channel = :c AND delivery_id = :d"),
            {"c": channel, "d": delivery_id})).first()
    if seen is None:
        return None
    async with engine.begin() as conn:
        row = (await conn.execute(sa.text(
            """
            UPDATE intakes SET deliveries = deliveries + 1, updated_at = now()
            WHERE channel = :c AND delivery_id = :d
            RETURNING id, state, order_id, order_number, reason, message, field
            """), {"c": channel, "d": delivery_id})).one_or_none()
    if row is None:
        return None
    log.info("intake %s: %s delivery %s received again, answered as before", row.id, channel,
             delivery_id)
    return _outcome_of(row, duplicate=True)


def _outcome_of(row: Any, *, duplicate: bool = False) -> Outcome:
    error = None
    if row.state != "accepted" and row.reason:
        error = DomainError(row.reason, row.message or row.reason, field=row.field)
    return Outcome(row.id, row.state, row.order_id, row.order_number, duplicate, error)


# --- processing -----------------------------------------------------------------------------


def _convert(received: Received) -> OrderIn:
    """The platform's payload as our order; Invalid naming the field when it cannot be."""
    channel = received.channel
    module = PLATFORMS[channel.kind]
    try:
        payload = module.decode(received.body)
    except MappingError as exc:
        raise Invalid("malformed_payload", exc.message, field=exc.field) from None
    try:
        order = module.to_order(payload, Context(channel.name, channel.default_region))
    except MappingError as exc:
        raise Invalid("unreadable_order", exc.message, field=exc.field) from None
    order["channel"] = channel.name
    tier = (order.get("customer") or {}).get("tier", Tier.STANDARD.value)
    customer_id = str((order.get("customer") or {}).get("id", ""))
    applied = rules.effective(channel.rules, channel.accounts, customer_id, str(tier))
    rules.map_skus(order, applied)
    try:
        return OrderIn.model_validate(order)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        raise Invalid("invalid_order", f"{field.replace('.[', '[')}: {err['msg']}",
                      field=field.replace(".[", "[")) from None


async def _list_prices(engine: AsyncEngine, order: OrderIn) -> dict[str, Decimal | None]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT sku, list_price FROM products WHERE sku = ANY(:s)"),
            {"s": [ln.sku for ln in order.lines]})).all()
    return {r.sku: r.list_price for r in rows}


async def _check_rules(engine: AsyncEngine, channel: ChannelConfig, order: OrderIn) -> None:
    """The channel's rules with the account's overrides (Invalid naming the broken
    rule); list prices are read only when a price tolerance applies."""
    applied = rules.effective(channel.rules, channel.accounts, order.customer.id,
                              order.customer.tier.value)
    broken = rules.check(order, applied, await _list_prices(engine, order)
                         if applied.price_tolerance is not None else {})
    if broken is not None:
        raise Invalid(broken.rule, broken.message, field=broken.field)


def _facts(order: OrderIn | None) -> dict[str, Any]:
    if order is None:
        return {"order_number": None, "order_value": None, "customer_tier": None}
    return {"order_number": order.order_number,
            "order_value": sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal(0)),
            "customer_tier": order.customer.tier.value}


async def _process(engine: AsyncEngine, settings: Settings, received: Received, *, path: str,
                   hand_off: HandOff | None, intake_id: int | None = None,
                   attempts: int = 1, audit: Audit | None = None) -> Outcome:
    channel = received.channel
    order: OrderIn | None = None
    try:
        order = _convert(received)
        await _check_rules(engine, channel, order)
    except Invalid as exc:
        return await _refused(engine, settings, received, exc, order, intake_id, attempts, audit)

    facts = _facts(order)
    accepted: list[int] = []

    async def record(conn: AsyncConnection, order_id: uuid.UUID, created: bool) -> None:
        accepted.append(await _write(conn, received, "accepted", intake_id=intake_id,
                                     order_id=order_id, attempts=attempts,
                                     reason=None if created else "duplicate_order", **facts))

    audit = audit or Audit(webhook_caller(channel.name), "POST", path)
    try:
        result = await orders.place_order(engine, order, settings, hand_off=hand_off,
                                          audit=audit, also=record)
    except DomainError as exc:
        return await _refused(engine, settings, received, exc, order, intake_id, attempts, audit)
    except (DBAPIError, PoolTimeout, OSError) as exc:
        log.warning("intake from %s: the database failed while placing order %s: %r",
                    channel.name, order.order_number, exc)
        unavailable = Unavailable("database_unavailable",
                                  "the database failed while placing the order; it will be "
                                  "tried again")
        return await _park(engine, settings, received, unavailable, order, intake_id, attempts,
                           audit=audit, transient=True)
    return Outcome(accepted[0], "accepted", result.order_id, order.order_number,
                   duplicate=not result.created)


async def _refused(engine: AsyncEngine, settings: Settings, received: Received,
                   exc: DomainError, order: OrderIn | None, intake_id: int | None,
                   attempts: int, audit: Audit | None) -> Outcome:
    if exc.code in FIXABLE:
        return await _park(engine, settings, received, exc, order, intake_id, attempts, audit)
    outcome = await _record_end(engine, settings, received, "rejected", reason=exc.code,
                                message=exc.message, field=exc.field, order=order,
                                intake_id=intake_id, attempts=attempts, audit=audit)
    raise Rejected(outcome, exc)


async def _park(engine: AsyncEngine, settings: Settings, received: Received, exc: DomainError,
                order: OrderIn | None, intake_id: int | None, attempts: int,
                audit: Audit | None, *, transient: bool = False) -> Outcome:
    log.warning("intake from %s parked as dead: %s (%s)", received.channel.name, exc.code,
                exc.message)
    return await _record_end(engine, settings, received, "dead", reason=exc.code,
                             message=exc.message, field=exc.field, order=order,
                             intake_id=intake_id, attempts=attempts, audit=audit,
                             transient=transient)


async def _record_end(engine: AsyncEngine, settings: Settings, received: Received, state: str,
                      *, reason: str | None = None, message: str | None = None,
                      field: str | None = None, order: OrderIn | None = None,
                      intake_id: int | None = None, attempts: int = 1,
                      audit: Audit | None = None, transient: bool = False,
                      keep_body: bool = True) -> Outcome:
    """An intake that placed no order: its row in a transaction of its own (with the
    audit of the replay that led here, if one did). The database failing here too is
    the one case nothing can be kept: answered 503, for the sender to send again."""

    async def work(uow: UnitOfWork) -> int:
        new_id = await _write(uow.conn, received, state, intake_id=intake_id, reason=reason,
                              message=message, field=field, attempts=attempts,
                              transient=transient, keep_body=keep_body, **_facts(order))
        if uow.audit is not None:
            uow.audit.about(new_id, f"intake {state}: {reason}")
        if state == "dead":
            facts = _facts(order)
            await alerts.intake_parked(uow, IntakeFacts(
                intake_id=new_id, channel=received.channel.name, reason=reason or "unknown",
                message=message or "", order_number=facts["order_number"],
                order_value=str(facts["order_value"]) if facts["order_value"] is not None
                else None))
        return new_id

    try:
        new_id = await unit_of_work.run(engine, settings, work, audit=audit)
    except (DBAPIError, PoolTimeout, OSError):
        log.error("intake from %s could not be recorded: the database is unavailable",
                  received.channel.name, exc_info=True)
        raise Unavailable("database_unavailable", "the order could not be taken in or "
                          "recorded; send it again shortly", retry_after=5) from None
    error = DomainError(reason, message or "", field=field) if state != "accepted" and reason \
        else None
    return Outcome(new_id, state, order_number=order.order_number if order else None,
                   error=error)


async def _write(conn: AsyncConnection, received: Received, state: str, *,
                 intake_id: int | None, order_id: uuid.UUID | None = None,
                 reason: str | None = None, message: str | None = None,
                 field: str | None = None, attempts: int = 1, transient: bool = False,
                 keep_body: bool = True, order_number: str | None = None,
                 order_value: Decimal | None = None, customer_tier: str | None = None) -> int:
    retry_at = None
    if state == "dead" and transient:
        if attempts <= len(RETRY_BACKOFF):
            retry_at = RETRY_BACKOFF[attempts - 1]
        else:
            transient = False  # retried enough: ops decide
    values = {"state": state, "order_id": order_id, "reason": reason,
              "message": (message or "")[:2000] or None, "field": field, "attempts": attempts,
              "transient": transient, "retry": retry_at, "number": order_number,
              "value": order_value, "tier": customer_tier}
    if intake_id is not None:
        return (await conn.execute(sa.text(
            """
            UPDATE intakes SET state = :state, order_id = :order_id, reason = :reason,
                message = :message, field = :field, attempts = :attempts,
                transient = :transient, updated_at = now(),
                next_attempt_at = now() + CAST(:retry AS interval),
                order_number = coalesce(:number, order_number),
                order_value = coalesce(:value, order_value),
                customer_tier = coalesce(:tier, customer_tier)
            WHERE id = :id RETURNING id
            """), values | {"id": intake_id})).scalar_one()
    return (await conn.execute(sa.text(
        """
        INSERT INTO intakes (channel, content_type, body, body_hash, signature, delivery_id,
            state, order_id, reason, message, field, attempts, transient, next_attempt_at,
            order_number, order_value, customer_tier)
        VALUES (:channel, :ct, :body, :hash, :sig, :delivery, :state, :order_id, :reason,
            :message, :field, :attempts, :transient, now() + CAST(:retry AS interval),
            :number, :value, :tier)
        RETURNING id
        """), values | {
            "channel": received.channel.name, "ct": received.content_type,
            "body": received.body if keep_body else None,
            "hash": received.body_hash if keep_body else None,
            "sig": received.signature, "delivery": received.delivery_id})).scalar_one()


# --- ops ------------------------------------------------------------------------------------

_TIER_ORDER = " ".join(f"WHEN '{t.value}' THEN {rank}" for t, rank in TIER_RANK.items())

_COLUMNS = ("id, channel, state, reason, message, field, signature, delivery_id, deliveries, "
            "order_number, order_id, order_value, customer_tier, attempts, received_at, "
            "updated_at, next_attempt_at")


async def list_intakes(engine: AsyncEngine, *, state: str | None = None,
                       channel: str | None = None, reason: str | None = None,
                       limit: int = 100, offset: int = 0) -> IntakePage:
    """Dead and rejected intakes (or those of `state`), highest impact first: order
    value, then customer tier, then the oldest."""
    where, params = ["state <> 'accepted'" if state is None else "state = :state"], {}
    if state is not None:
        params["state"] = state
    for column, value in (("channel", channel), ("reason", reason)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"""
            SELECT {_COLUMNS}, count(*) OVER () AS total FROM intakes
            WHERE {" AND ".join(where)}
            ORDER BY order_value DESC NULLS LAST,
                     CASE customer_tier {_TIER_ORDER} ELSE 9 END, received_at, id
            LIMIT :limit OFFSET :offset
        """), params | {"limit": limit, "offset": offset})).mappings().all()
    return IntakePage(items=[IntakeOut.model_validate({k: v for k, v in r.items() if k != "total"})
                             for r in rows],
                      total=rows[0]["total"] if rows else 0)


async def get_intake(engine: AsyncEngine, intake_id: int) -> IntakeOut:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text(f"SELECT {_COLUMNS} FROM intakes WHERE id = :id"),
                                  {"id": intake_id})).mappings().one_or_none()
    if row is None:
        raise NotFound("unknown_intake", f"no intake {intake_id}", field="intake_id")
    return IntakeOut.model_validate(dict(row))


async def replay(engine: AsyncEngine, settings: Settings, intake_id: int, *, path: str,
                 hand_off: HandOff | None = None, audit: Audit | None = None) -> Outcome:
    """Take a dead or rejected intake in again through the same flow (its signature was
    proven when it arrived), with the channel's rules as they are now."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM intakes WHERE id = :id"),
                                  {"id": intake_id})).one_or_none()
    if row is None:
        raise NotFound("unknown_intake", f"no intake {intake_id}", field="intake_id")
    if row.state == "accepted":
        raise Conflict("already_accepted", f"intake {intake_id} was accepted as order "
                       f"{row.order_id}", field="intake_id")
    if row.body is None:
        raise Conflict("nothing_to_replay", f"intake {intake_id} kept no payload "
                       f"({row.reason}): the sender must send it again", field="intake_id")
    channel = await channels.load(engine, settings, row.channel)
    if channel is None or channel.kind not in PLATFORMS:
        raise Conflict("channel_gone", f"channel {row.channel!r} no longer takes webhooks",
                       field="intake_id")
    received = Received(channel, bytes(row.body), row.content_type, row.delivery_id,
                        row.signature)
    return await _process(engine, settings, received, path=path, hand_off=hand_off,
                          intake_id=row.id, attempts=row.attempts + 1, audit=audit)


async def replay_by_reason(engine: AsyncEngine, settings: Settings, reason: str, *,
                           channel: str | None, limit: int, audit: Audit,
                           hand_off: HandOff | None = None) -> dict[str, Any]:
    """Replay the dead intakes parked for `reason` (after the missing product was
    created, say), highest impact first. Each is audited on its own, and `audit` (the
    bulk request's) records the counts."""
    page = await list_intakes(engine, state="dead", channel=channel, reason=reason, limit=limit)
    counts = {"accepted": 0, "rejected": 0, "dead": 0}
    for item in page.items:
        each = Audit(audit.caller, audit.method, audit.path, resource=str(item.id))
        try:
            outcome = await replay(engine, settings, item.id, path=audit.path,
                                   hand_off=hand_off, audit=each)
        except Rejected as exc:
            outcome = exc.outcome
        counts[outcome.state] += 1
    audit.about(reason, f"replayed {len(page.items)}: {counts['accepted']} accepted, "
                f"{counts['rejected']} rejected, {counts['dead']} dead")

    async def nothing(uow: UnitOfWork) -> None:
        return None

    await unit_of_work.run(engine, settings, nothing, audit=audit)
    return {"reason": reason, "replayed": len(page.items), **counts}


_DUE = sa.text(
    """
    WITH due AS (
        SELECT id FROM intakes
        WHERE state = 'dead' AND transient AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED
    )
    UPDATE intakes i SET next_attempt_at = now() + interval '5 minutes'
    FROM due WHERE i.id = due.id
    RETURNING i.id
    """
)
"""Claims the due retries (a five-minute lease, so another worker skips them and a worker
that dies mid-retry leaves them to be claimed again)."""


async def retry_due(engine: AsyncEngine, settings: Settings, *, limit: int = 20,
                    hand_off: HandOff | None = None) -> int:
    """Replay the dead intakes whose transient cause's retry time has come; how many."""
    async with engine.begin() as conn:
        ids = (await conn.execute(_DUE, {"n": limit})).scalars().all()
    for intake_id in ids:
        path = f"/ops/intake/{intake_id}/replay"
        # Each retry's ids (the order it places) end with it, in this long-lived loop.
        with logs.bind(intake_id=intake_id):
            try:
                outcome = await replay(engine, settings, intake_id, path=path, hand_off=hand_off,
                                       audit=Audit(RETRIER, "POST", path, resource=str(intake_id)))
                log.info("intake %s retried: %s", intake_id, outcome.state)
            except Rejected as exc:
                log.info("intake %s retried: rejected (%s)", intake_id, exc.error.code)
            except DomainError as exc:
                log.warning("intake %s could not be retried: %s", intake_id, exc.message)
    return len(ids)


async def retry_forever(engine: AsyncEngine, settings: Settings, stop: Any) -> None:
    """The worker's loop over `retry_due`, until `stop` is set."""
    import asyncio

    while not stop.is_set():
        try:
            await retry_due(engine, settings)
        except (DBAPIError, PoolTimeout, OSError) as exc:
            log.warning("intake retries paused: the database is unavailable (%r)", exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.intake_retry_poll_seconds)
        except TimeoutError:
            pass


# --- native orders (POST /orders) -------------------------------------------------------------


def _native(name: str, config: ChannelConfig | None) -> ChannelConfig:
    from backorders.schemas import ChannelRules

    return config or ChannelConfig(name=name, kind="native", secret=None, rules=ChannelRules(),
                                   accounts={}, default_region="US")


async def place_native(engine: AsyncEngine, settings: Settings, order: OrderIn, raw: bytes,
                       content_type: str | None, *, hand_off: HandOff | None,
                       audit: Audit | None) -> orders.IntakeResult:
    """`POST /orders`, through the same entry flow: the channel's rules (when it is
    registered), the order, and its intake row in the order's own transaction; a refusal
    is recorded as rejected and raised for the API to answer as before."""
    channel = _native(order.channel, await channels.load(engine, settings, order.channel))
    received = Received(channel, raw, content_type, None, "key")
    facts = _facts(order)
    try:
        await _check_rules(engine, channel, order)

        async def record(conn: AsyncConnection, order_id: uuid.UUID, created: bool) -> None:
            await _write(conn, received, "accepted", intake_id=None, order_id=order_id,
                         reason=None if created else "duplicate_order", **facts)

        return await orders.place_order(engine, order, settings, hand_off=hand_off,
                                        audit=audit, also=record)
    except DomainError as exc:
        await _record_end(engine, settings, received, "rejected", reason=exc.code,
                          message=exc.message, field=exc.field, order=order)
        raise


async def record_unreadable(engine: AsyncEngine, settings: Settings, channel: str, raw: bytes,
                            content_type: str | None, message: str, field: str | None) -> None:
    """A `POST /orders` body that is not an order at all: kept as rejected, like any
    payload a channel sent, before the 422 goes out."""
    received = Received(_native(channel, None), raw, content_type, None, "key")
    await _record_end(engine, settings, received, "rejected", reason="validation_error",
                      message=message, field=field)
