"""Order intake and cancellation.

Intake is one transaction: it records the order, reserves what is on the shelf, splits
every line into what ships now and what waits, and writes the messages that start each
line's workflow. Either all of it commits or none of it does; the outbox then makes
sure every recorded line has its workflow running."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders import logs
from backorders.contracts import line as line_contract
from backorders.contracts.line import AllocationRef, CancelNotice, StartLine
from backorders.domain.customers import TIER_RANK, Tier
from backorders.domain.lifecycle import CANCELLABLE, AllocationStatus, line_status
from backorders.schemas import CancelIn, OrderIn
from backorders.services import lines, stock, unit_of_work
from backorders.services.allocation import Restock
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, Invalid, unknown_order
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.services.units import units_changed
from backorders.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class IntakeResult:
    order_id: uuid.UUID
    created: bool


Also = Callable[[AsyncConnection, uuid.UUID, bool], Awaitable[None]]
"""Work of the caller's to do in the order's transaction: (conn, order id, created)."""


async def place_order(engine: AsyncEngine, body: OrderIn, settings: Settings, *,
                      hand_off: HandOff | None = None, audit: Audit | None = None,
                      also: Also | None = None) -> IntakeResult:
    """`also` runs in the same transaction, after the order is placed (or found to be a
    replay): channel intake records the payload's outcome there."""
    fingerprint = body.fingerprint()

    async def work(uow: UnitOfWork) -> IntakeResult:
        conn = uow.conn
        order_id = uuid.uuid4()
        logs.set_ids(order_id=order_id)
        placed_at = body.placed_at or datetime.now(UTC)
        order_value = sum((ln.unit_price * ln.quantity for ln in body.lines), Decimal(0))
        await _upsert_customer(conn, body)
        inserted = (
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO orders (id, channel, order_number, placed_at, customer_id,
                                        customer_tier, customer_email, customer_phone,
                                        order_value, request_hash, ship_complete)
                    VALUES (:id, :channel, :number, :placed_at, :customer_id, :tier, :email,
                            :phone, :value, :hash, :ship_complete)
                    ON CONFLICT (channel, order_number) DO NOTHING
                    RETURNING id
                    """
                ),
                {"id": order_id, "channel": body.channel, "number": body.order_number,
                 "placed_at": placed_at, "customer_id": body.customer.id,
                 "tier": body.customer.tier.value, "email": body.customer.email,
                 "phone": body.customer.phone, "value": order_value, "hash": fingerprint,
                 "ship_complete": body.ship_complete},
            )
        ).one_or_none()
        if inserted is None:
            replayed = await _replay(conn, body, fingerprint)
            if uow.audit is not None:
                uow.audit.about(replayed.order_id, "replayed")
            if also is not None:
                await also(conn, replayed.order_id, False)
            return replayed

        stock_rows = await stock.lock(conn, (ln.sku for ln in body.lines))
        for index, ln in enumerate(body.lines):
            if ln.sku not in stock_rows:
                raise Invalid("unknown_sku", f"no product with SKU {ln.sku!r}",
                              field=f"lines[{index}].sku")

        line_rows, intake_allocations, events = [], [], []
        for index, ln in enumerate(body.lines):
            row = stock_rows[ln.sku]
            fulfillable = min(ln.quantity, max(row.available, 0))
            waiting = ln.quantity - fulfillable
            if waiting:
                _check_backorder_policy(row, waiting, index)
            row.reserved += fulfillable
            row.backordered += waiting
            line_id = uuid.uuid4()
            in_progress = [AllocationStatus.ALLOCATED] if fulfillable else []
            line_rows.append({
                "id": line_id, "order_id": order_id, "line_no": index + 1, "sku": ln.sku,
                "quantity": ln.quantity, "unit_price": ln.unit_price,
                "fulfillable_quantity": fulfillable, "initial_backordered": waiting,
                "waiting_quantity": waiting,
                "status": line_status(waiting=waiting, shipped=0, in_progress=in_progress).value,
                "workflow_id": line_contract.workflow_id(line_id),
                "placed_at": placed_at, "tier_rank": TIER_RANK[Tier(body.customer.tier)],
                "order_value": order_value, "customer_id": body.customer.id,
                "promised_date": ln.promised_date,
            })
            if fulfillable:
                intake_allocations.append({
                    "id": uuid.uuid4(), "line_id": line_id, "order_id": order_id,
                    "sku": ln.sku, "quantity": fulfillable, "source": "stock",
                })
                events.append(lines.Event(line_id, "reserved",
                                          f"{fulfillable} unit(s) reserved from stock",
                                          {"quantity": fulfillable}))
            if waiting:
                events.append(lines.Event(line_id, "backordered",
                                          f"{waiting} unit(s) backordered: {ln.sku} is short",
                                          {"quantity": waiting}))

        await conn.execute(
            sa.text(
                """
                INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
                    fulfillable_quantity, initial_backordered, waiting_quantity, status,
                    workflow_id, placed_at, tier_rank, order_value, customer_id, promised_date)
                VALUES (:id, :order_id, :line_no, :sku, :quantity, :unit_price,
                    :fulfillable_quantity, :initial_backordered, :waiting_quantity, :status,
                    :workflow_id, :placed_at, :tier_rank, :order_value, :customer_id,
                    :promised_date)
                """
            ),
            line_rows,
        )
        if intake_allocations:
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO allocations (id, line_id, order_id, sku, quantity, source, status)
                    VALUES (:id, :line_id, :order_id, :sku, :quantity, :source, 'allocated')
                    """
                ),
                intake_allocations,
            )
        await lines.record(conn, events)
        await uow.send([(r["id"], StartLine()) for r in line_rows],
                       priority=TIER_RANK[body.customer.tier])
        await units_changed(
            uow, stock_rows.values(),
            new_backorders={r["sku"] for r in line_rows if r["waiting_quantity"]},
            orders=[order_id] if body.ship_complete else ())  # released at once if all is in hand
        log.info("order %s/%s accepted for customer %s: %s", body.channel, body.order_number,
                 body.customer.id, "; ".join(
                     f"{r['sku']} x{r['quantity']} ({r['fulfillable_quantity']} from stock, "
                     f"{r['waiting_quantity']} backordered)" for r in line_rows))
        if uow.audit is not None:
            uow.audit.about(order_id, f"created {body.channel} order {body.order_number}")
        if also is not None:
            await also(conn, order_id, True)
        return IntakeResult(order_id, True)

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)


def _check_backorder_policy(row: stock.StockRow, waiting: int, index: int) -> None:
    field = f"lines[{index}].quantity"
    if row.discontinued:
        raise Conflict(
            "sku_discontinued",
            f"{row.sku} is discontinued: only {row.available} unit(s) left, none can be backordered",
            field=field,
        )
    if not row.backorder_allowed:
        raise Conflict(
            "backorder_not_allowed",
            f"{row.sku} cannot be backordered and only {max(row.available, 0)} unit(s) are available",
            field=field,
        )
    if row.backorder_until is not None and datetime.now(UTC).date() > row.backorder_until:
        raise Conflict(
            "backorders_closed",
            f"{row.sku} takes no backorders after {row.backorder_until.isoformat()}; only "
            f"{max(row.available, 0)} unit(s) are available",
            field=field,
        )
    limit = row.backorder_max_quantity
    if limit is not None and row.backordered + waiting > limit:
        raise Conflict(
            "backorder_limit_exceeded",
            f"{row.sku} allows at most {limit} unit(s) on backorder; {row.backordered} already "
            f"wait and this line would add {waiting}",
            field=field,
        )


async def _replay(conn: AsyncConnection, body: OrderIn, fingerprint: str) -> IntakeResult:
    row = (
        await conn.execute(
            sa.text(
                "SELECT id, request_hash FROM orders WHERE channel = :c AND order_number = :n"
            ),
            {"c": body.channel, "n": body.order_number},
        )
    ).one()
    if row.request_hash != fingerprint:
        raise Conflict(
            "order_conflict",
            f"order {body.order_number!r} from channel {body.channel!r} was already placed "
            "with different contents",
            field="order_number",
        )
    log.info("order %s/%s received again: answered with the original, nothing changed",
             body.channel, body.order_number)
    return IntakeResult(row.id, False)


async def _upsert_customer(conn: AsyncConnection, body: OrderIn) -> None:
    """Record the customer, or update their contact and tier from a channel they have
    ordered through alone: one channel's order must not redirect the messages of a
    customer another channel knows (each order keeps its own contact regardless)."""
    c = body.customer
    await conn.execute(
        sa.text(
            """
            INSERT INTO customers (id, email, phone, tier) VALUES (:id, :email, :phone, :tier)
            ON CONFLICT (id) DO UPDATE SET
                email = coalesce(EXCLUDED.email, customers.email),
                phone = coalesce(EXCLUDED.phone, customers.phone),
                tier = EXCLUDED.tier, updated_at = now()
            WHERE NOT EXISTS (SELECT 1 FROM orders o
                              WHERE o.customer_id = EXCLUDED.id AND o.channel <> :channel)
            """
        ),
        {"id": c.id, "email": c.email, "phone": c.phone, "tier": c.tier.value,
         "channel": body.channel},
    )


@dataclass
class CancelResult:
    order_id: uuid.UUID
    cancelled_quantity: int


async def cancel_order(
    engine: AsyncEngine, order_id: uuid.UUID, body: CancelIn, settings: Settings, *,
    hand_off: HandOff | None = None,
    audit: Audit | None = None,
) -> CancelResult:
    """Cancel what has not begun its hand-over to the carrier: the waiting quantity and
    any allocation not yet dispatching. Freed units go to the next lines in the queue."""
    reason = body.reason or "cancelled on request"

    async def work(uow: UnitOfWork) -> CancelResult:
        conn = uow.conn
        order = (
            await conn.execute(sa.text("SELECT id FROM orders WHERE id = :id"), {"id": order_id})
        ).one_or_none()
        if order is None:
            raise unknown_order(order_id)
        order_lines = (
            await conn.execute(
                sa.text("SELECT id, sku FROM order_lines WHERE order_id = :id ORDER BY id"),
                {"id": order_id},
            )
        ).all()
        wanted = {r.id for r in order_lines}
        if body.line_ids is not None:
            for index, line_id in enumerate(body.line_ids):
                if line_id not in wanted:
                    raise Invalid("unknown_line", f"line {line_id} is not part of order {order_id}",
                                  field=f"line_ids[{index}]")
            wanted = set(body.line_ids)
        targets = [r for r in order_lines if r.id in wanted]
        done = await cancel_lines(uow, targets, reason,
                                  release_label=f"units freed by cancelling order {order_id}")
        total = done.total
        if body.line_ids is None and total:
            await conn.execute(
                sa.text(
                    """
                    UPDATE orders SET cancelled_at = coalesce(cancelled_at, now()),
                                      cancel_reason = coalesce(cancel_reason, :reason)
                    WHERE id = :id
                    """
                ),
                {"id": order_id, "reason": reason},
            )
        logs.set_ids(order_id=order_id)
        log.info("order %s: %d unit(s) cancelled (%s)", order_id, total, reason)
        return CancelResult(order_id, total)

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)


@dataclass
class LinesCancelled:
    total: int
    per_line: dict[uuid.UUID, int]


async def cancel_lines(uow: UnitOfWork, targets: Sequence[Any], reason: str, *,
                       release_label: str, waiting_only: bool = False,
                       skus: Iterable[str] = ()) -> LinesCancelled:
    """Cancel what the lines still wait for and, unless `waiting_only`, any allocation not
    yet handed to the carrier; freed units go to the next lines in their queues.
    `targets` have id, sku; `skus` are settled too even when no target has them."""
    conn = uow.conn
    stock_rows = await stock.lock(conn, {r.sku for r in targets} | set(skus))
    locked = (
        await conn.execute(
            sa.text(
                """
                SELECT id, sku, waiting_quantity FROM order_lines
                WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
                """
            ),
            {"ids": [r.id for r in targets]},
        )
    ).all()
    released = (
        await conn.execute(
            sa.text(
                """
                UPDATE allocations SET status = 'cancelled', cancelled_at = now(),
                                       updated_at = now()
                WHERE line_id = ANY(:ids) AND status = ANY(:cancellable)
                  AND dispatch_started_at IS NULL AND NOT :waiting_only
                RETURNING id, line_id, quantity
                """
            ),
            {"ids": [r.id for r in targets], "cancellable": [s.value for s in CANCELLABLE],
             "waiting_only": waiting_only},
        )
    ).all()
    by_line: dict[uuid.UUID, list[sa.Row]] = {}
    for a in released:
        by_line.setdefault(a.line_id, []).append(a)

    notices, events, total = [], [], 0
    per_line: dict[uuid.UUID, int] = {}
    for ln in locked:
        freed = by_line.get(ln.id, [])
        cancelled = ln.waiting_quantity + sum(a.quantity for a in freed)
        if not cancelled:
            continue
        total += cancelled
        per_line[ln.id] = cancelled
        row = stock_rows[ln.sku]
        row.backordered -= ln.waiting_quantity
        row.reserved -= sum(a.quantity for a in freed)
        await conn.execute(
            sa.text(
                """
                UPDATE order_lines SET waiting_quantity = 0,
                    cancelled_quantity = cancelled_quantity + :n, updated_at = now()
                WHERE id = :id
                """
            ),
            {"id": ln.id, "n": cancelled},
        )
        notices.append((ln.id, CancelNotice(
            event_id=str(uuid.uuid4()), reason=reason, waiting_quantity=ln.waiting_quantity,
            allocations=[AllocationRef(allocation_id=str(a.id), quantity=a.quantity,
                                       source="cancelled") for a in freed],
        )))
        events.append(lines.Event(ln.id, "cancelled", f"{cancelled} unit(s) cancelled: {reason}",
                                  {"quantity": cancelled, "waiting": ln.waiting_quantity,
                                   "allocations": [str(a.id) for a in freed]}))
    await lines.refresh_status(conn, (ln.id for ln in locked))
    await lines.record(conn, events)
    await uow.send(notices)
    order_ids = (await conn.execute(sa.text(
        "SELECT DISTINCT order_id FROM order_lines WHERE id = ANY(:ids)"),
        {"ids": [r.id for r in targets]})).scalars().all()
    await units_changed(uow, stock_rows.values(), restock=Restock("release", release_label),
                        orders=order_ids)
    return LinesCancelled(total, per_line)
