"""Purchase orders from the ERP, as it has them now. Putting one re-dates the waiting
lines of every SKU it names (through `units.units_changed`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import autocommit
from backorders.schemas import PurchaseOrderIn, PurchaseOrderOut
from backorders.services import stock, unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, NotFound
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.services.units import units_changed
from backorders.settings import Settings


async def put_purchase_order(engine: AsyncEngine, po_number: str, body: PurchaseOrderIn,
                             settings: Settings, *,
                             hand_off: HandOff | None = None,
                             audit: Audit | None = None) -> tuple[PurchaseOrderOut, bool]:
    """Create or replace a purchase order as the ERP sees it now: new dates, quantities,
    lines dropped (cancelled) or the whole order cancelled. What was received stays."""

    async def work(uow: UnitOfWork) -> tuple[PurchaseOrderOut, bool]:
        conn = uow.conn
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
        stock_rows = await stock.lock(conn, touched)
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
        await units_changed(uow, stock_rows.values(), supply_changed=True)
        return await _po_out(conn, po_number), bool(created)

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)


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
