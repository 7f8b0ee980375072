"""Supply from the ERP: purchase orders, and the expected date of every waiting line.

A SKU's expected dates come from walking its queue, in allocation order, against its open
purchase order lines in expected-date order: a line is expected when the purchase order
line that covers its last waiting unit arrives, plus the handling lead time. Lines that
no open purchase order covers are `no_supply`, so staff can source them. Dates are
recomputed in the transaction that changes the queue or the supply, and a customer whose
date moved by more than a day is told (through their line's workflow)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders import queue
from backorders.db import autocommit, transaction
from backorders.schemas import (
    PurchaseOrderIn,
    PurchaseOrderOut,
    SupplierOut,
    SupplierPerformanceOut,
)
from backorders.services import lines, outbox, stock
from backorders.services.errors import Conflict, NotFound
from backorders.settings import Settings

log = logging.getLogger(__name__)

TELL_CUSTOMER_AFTER = timedelta(days=1)
"""A date that moves by more than this is worth a message."""


@dataclass(frozen=True)
class EtaChange:
    line_id: uuid.UUID
    before: date | None
    after: date | None
    no_supply_before: bool
    no_supply: bool

    @property
    def first(self) -> bool:
        """The line's first estimate: its backorder message carries it."""
        return self.before is None and not self.no_supply_before

    @property
    def worth_telling(self) -> bool:
        if self.first:
            return False
        if self.before is None or self.after is None:
            return True  # a date appeared or disappeared
        return abs(self.after - self.before) > TELL_CUSTOMER_AFTER

    @property
    def later(self) -> bool:
        if self.after is None:
            return True
        return self.before is not None and self.after > self.before

    def reason(self) -> str:
        if self.after is None:
            return "no incoming supply covers these units yet; we are sourcing them"
        if self.before is None:
            return f"now expected by {self.after.isoformat()}"
        return f"expected date moved from {self.before.isoformat()} to {self.after.isoformat()}"


async def refresh_expected_dates(conn: AsyncConnection, sku: str,
                                 settings: Settings) -> list[int]:
    """Recompute the SKU's expected dates; tell the lines whose date changed. Returns the
    outbox rows to hand off after commit."""
    policy = (await conn.execute(sa.text("SELECT allocation_policy FROM products WHERE sku = :s"),
                                 {"s": sku})).scalar_one()
    changed = (await conn.execute(sa.text(
        f"""
        WITH s AS (
            SELECT pl.expected_at,
                   sum(pl.quantity - pl.received_quantity)
                       OVER (ORDER BY pl.expected_at, pl.po_number ROWS UNBOUNDED PRECEDING)
                       AS supply_to
            FROM purchase_order_lines pl JOIN purchase_orders po USING (po_number)
            WHERE pl.sku = :sku AND po.status = 'open' AND NOT pl.cancelled
              AND pl.received_quantity < pl.quantity
        ), front AS (
            -- Every waiting line wants at least one unit, so open supply can reach no
            -- further than its first `supply` lines: the walk costs what is on order,
            -- not the length of the queue.
            SELECT l.id, l.waiting_quantity, l.placed_at, l.seq, l.tier_rank, l.order_value,
                   l.expected_date AS before, l.no_supply AS no_supply_before
            FROM order_lines l WHERE l.sku = :sku AND l.waiting_quantity > 0
            ORDER BY {queue.queue_order_by(policy)}
            LIMIT (SELECT coalesce(max(supply_to), 0) FROM s)
        ), eta AS (
            SELECT q.id, q.before, q.no_supply_before,
                   (SELECT s.expected_at FROM s WHERE s.supply_to >= q.demand_to
                    ORDER BY s.supply_to LIMIT 1) AS arrives
            FROM (SELECT f.*, sum(f.waiting_quantity) OVER (
                      ORDER BY {queue.queue_order_by(policy, alias="f")}
                      ROWS UNBOUNDED PRECEDING) AS demand_to
                  FROM front f) q
        ), dated AS (
            UPDATE order_lines l
            SET expected_date = eta.arrives + :lead, no_supply = eta.arrives IS NULL
            FROM eta
            WHERE l.id = eta.id
              AND (l.expected_date IS DISTINCT FROM eta.arrives + :lead
                   OR l.no_supply IS DISTINCT FROM (eta.arrives IS NULL))
            RETURNING l.id, eta.before, l.expected_date AS after, eta.no_supply_before,
                      l.no_supply
        ), beyond AS (
            -- Lines behind the front that still have a date (or were never dated): the
            -- partial index on lines not yet marked keeps this off the rest of the queue.
            UPDATE order_lines l
            SET expected_date = NULL, no_supply = true
            FROM (SELECT r.id, r.expected_date AS before, r.no_supply AS no_supply_before
                  FROM order_lines r
                  WHERE r.sku = :sku AND r.waiting_quantity > 0 AND NOT r.no_supply
                    AND r.id NOT IN (SELECT id FROM front)) b
            WHERE l.id = b.id
            RETURNING l.id, b.before, l.expected_date AS after, b.no_supply_before, l.no_supply
        )
        SELECT * FROM dated UNION ALL SELECT * FROM beyond
        """), {"sku": sku, "lead": settings.eta_handling_days})).all()
    changes = [EtaChange(r.id, r.before, r.after, r.no_supply_before, r.no_supply)
               for r in changed]
    messages, events = [], []
    for change in changes:
        if change.first:
            continue
        event_id = str(uuid.uuid4())
        messages.append((change.line_id, {
            "event_id": event_id,
            "expected_date": change.after.isoformat() if change.after else None,
            "no_supply": change.no_supply,
            "tell_customer": change.worth_telling,
            "later": change.later,
            "reason": change.reason(),
        }))
        events.append(lines.Event(change.line_id, "expected_date", change.reason(),
                                  {"before": change.before, "after": change.after,
                                   "told": change.worth_telling}))
    await lines.record(conn, events)
    if changes:
        log.info("%s: expected dates changed on %d waiting line(s), %d told", sku,
                 len(changes), sum(c.worth_telling for c in changes))
    return await outbox.enqueue(conn, outbox.EXPECTED, messages, settings)


# --- purchase orders ---------------------------------------------------------------------


async def put_purchase_order(engine: AsyncEngine, po_number: str, body: PurchaseOrderIn,
                             settings: Settings) -> tuple[PurchaseOrderOut, bool, list[int]]:
    """Create or replace a purchase order as the ERP sees it now: new dates, quantities,
    lines dropped (cancelled) or the whole order cancelled. What was received stays."""

    async def work(conn: AsyncConnection) -> tuple[PurchaseOrderOut, bool, list[int]]:
        skus = {ln.sku for ln in body.lines}
        known = set((await conn.execute(sa.text("SELECT sku FROM products WHERE sku = ANY(:s)"),
                                        {"s": list(skus)})).scalars())
        for index, ln in enumerate(body.lines):
            if ln.sku not in known:
                raise NotFound("unknown_sku", f"no product with SKU {ln.sku!r}",
                               field=f"lines[{index}].sku")
        await conn.execute(sa.text(
            """
            INSERT INTO suppliers (id, name) VALUES (:id, :name)
            ON CONFLICT (id) DO UPDATE SET name = coalesce(EXCLUDED.name, suppliers.name)
            """), {"id": body.supplier.id, "name": body.supplier.name})
        created = (await conn.execute(sa.text(
            """
            INSERT INTO purchase_orders (po_number, supplier_id, status)
            VALUES (:po, :supplier, :status)
            ON CONFLICT (po_number) DO UPDATE
            SET supplier_id = EXCLUDED.supplier_id, status = EXCLUDED.status, updated_at = now()
            RETURNING (xmax = 0) AS created
            """), {"po": po_number, "supplier": body.supplier.id,
                   "status": body.status})).scalar_one()
        existing = {r.sku: r for r in (await conn.execute(sa.text(
            "SELECT * FROM purchase_order_lines WHERE po_number = :po FOR UPDATE"),
            {"po": po_number})).all()}
        # Lock the SKUs' stock rows in the usual order, so dates are computed against a
        # queue nobody is changing.
        touched = sorted(skus | set(existing))
        await stock.lock(conn, touched)
        for index, ln in enumerate(body.lines):
            before = existing.get(ln.sku)
            if before is not None and ln.quantity < before.received_quantity:
                raise Conflict("below_received",
                               f"{before.received_quantity} unit(s) of {ln.sku} were already "
                               f"received on {po_number}; the quantity cannot be lower",
                               field=f"lines[{index}].quantity")
            await conn.execute(sa.text(
                """
                INSERT INTO purchase_order_lines (po_number, sku, quantity, expected_at,
                                                  promised_at)
                VALUES (:po, :sku, :q, :at, :at)
                ON CONFLICT (po_number, sku) DO UPDATE
                SET quantity = EXCLUDED.quantity, expected_at = EXCLUDED.expected_at,
                    cancelled = false, updated_at = now()
                """), {"po": po_number, "sku": ln.sku, "q": ln.quantity, "at": ln.expected_at})
        dropped = [sku for sku in existing if sku not in skus]
        if dropped:
            await conn.execute(sa.text(
                "UPDATE purchase_order_lines SET cancelled = true, updated_at = now() "
                "WHERE po_number = :po AND sku = ANY(:skus)"), {"po": po_number, "skus": dropped})
        outbox_ids: list[int] = []
        for sku in touched:
            outbox_ids += await refresh_expected_dates(conn, sku, settings)
        return await _po_out(conn, po_number), bool(created), outbox_ids

    return await transaction(engine, work)


async def _po_out(conn: AsyncConnection, po_number: str) -> PurchaseOrderOut:
    po = (await conn.execute(sa.text(
        "SELECT po.*, s.name AS supplier_name FROM purchase_orders po "
        "JOIN suppliers s ON s.id = po.supplier_id WHERE po.po_number = :po"),
        {"po": po_number})).one_or_none()
    if po is None:
        raise NotFound("unknown_purchase_order", f"no purchase order {po_number!r}",
                       field="po_number")
    po_lines = (await conn.execute(sa.text(
        "SELECT * FROM purchase_order_lines WHERE po_number = :po ORDER BY sku"),
        {"po": po_number})).all()
    return PurchaseOrderOut.model_validate({
        "po_number": po.po_number, "supplier": {"id": po.supplier_id, "name": po.supplier_name},
        "status": po.status, "created_at": po.created_at, "updated_at": po.updated_at,
        "lines": [dict(r._mapping) for r in po_lines],
    })


async def get_purchase_order(engine: AsyncEngine, po_number: str) -> PurchaseOrderOut:
    async with autocommit(engine).connect() as conn:
        return await _po_out(conn, po_number)


async def record_receipt(conn: AsyncConnection, po_number: str | None, sku: str,
                         quantity: int) -> None:
    """A receipt against a purchase order line closes it fully or partly. A reference
    the ledger does not know is kept on the receipt but changes no supply."""
    if po_number is None:
        return
    await conn.execute(sa.text(
        """
        UPDATE purchase_order_lines SET received_quantity = received_quantity + :q,
                                        updated_at = now()
        WHERE po_number = :po AND sku = :sku
        """), {"po": po_number, "sku": sku, "q": quantity})


# --- supplier performance -----------------------------------------------------------------

_PERFORMANCE = """
    SELECT po.supplier_id, s.name AS supplier_name, r.sku,
           count(*) AS receipts,
           sum(r.quantity) AS units,
           avg(CASE WHEN r.received_at::date <= pl.promised_at THEN 1.0 ELSE 0.0 END)
               AS on_time_rate,
           avg(greatest(r.received_at::date - pl.promised_at, 0))::float AS average_delay_days,
           max(greatest(r.received_at::date - pl.promised_at, 0)) AS worst_delay_days,
           sum(greatest(r.received_at::date - pl.promised_at, 0) * r.allocated_quantity)
               AS backorder_unit_days
    FROM receipts r
    JOIN purchase_order_lines pl ON pl.po_number = r.purchase_order AND pl.sku = r.sku
    JOIN purchase_orders po ON po.po_number = pl.po_number
    JOIN suppliers s ON s.id = po.supplier_id
    {where}
    GROUP BY po.supplier_id, s.name, r.sku
"""


def _performance_row(r: Any) -> SupplierPerformanceOut:
    return SupplierPerformanceOut(
        sku=r.sku, receipts=r.receipts, units=r.units, on_time_rate=float(r.on_time_rate),
        average_delay_days=float(r.average_delay_days), worst_delay_days=r.worst_delay_days,
        backorder_unit_days=r.backorder_unit_days)


async def supplier_performance(engine: AsyncEngine, supplier_id: str) -> SupplierOut:
    async with autocommit(engine).connect() as conn:
        supplier = (await conn.execute(sa.text("SELECT * FROM suppliers WHERE id = :id"),
                                       {"id": supplier_id})).one_or_none()
        if supplier is None:
            raise NotFound("unknown_supplier", f"no supplier {supplier_id!r}",
                           field="supplier_id")
        rows = (await conn.execute(sa.text(_PERFORMANCE.format(
            where="WHERE po.supplier_id = :id")), {"id": supplier_id})).all()
    return _supplier_out(supplier.id, supplier.name, rows)


def _supplier_out(supplier_id: str, name: str | None, rows: list[Any]) -> SupplierOut:
    per_sku = sorted((_performance_row(r) for r in rows), key=lambda p: p.sku)
    receipts = sum(p.receipts for p in per_sku)
    return SupplierOut(
        id=supplier_id, name=name, receipts=receipts,
        on_time_rate=(sum(p.on_time_rate * p.receipts for p in per_sku) / receipts
                      if receipts else None),
        average_delay_days=(sum(p.average_delay_days * p.receipts for p in per_sku) / receipts
                            if receipts else None),
        backorder_unit_days=sum(p.backorder_unit_days for p in per_sku),
        skus=per_sku)


async def list_suppliers(engine: AsyncEngine) -> list[SupplierOut]:
    """Ranked: most backorder unit-days caused first, then the lowest on-time rate."""
    async with autocommit(engine).connect() as conn:
        suppliers = (await conn.execute(sa.text("SELECT id, name FROM suppliers"))).all()
        rows = (await conn.execute(sa.text(_PERFORMANCE.format(where="")))).all()
    by_supplier: dict[str, list[Any]] = {}
    for r in rows:
        by_supplier.setdefault(r.supplier_id, []).append(r)
    out = [_supplier_out(s.id, s.name, by_supplier.get(s.id, [])) for s in suppliers]
    return sorted(out, key=lambda s: (-s.backorder_unit_days,
                                      s.on_time_rate if s.on_time_rate is not None else 2.0,
                                      s.id))
