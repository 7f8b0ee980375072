"""Products, their policies, and counted stock."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.schemas import (
    AllocationOut,
    BackorderPolicy,
    InventoryOut,
    ProductIn,
    ProductOut,
    StockCountIn,
)
from backorders.services import orders, stock, unit_of_work
from backorders.services.allocation import Restock
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, Invalid, NotFound
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.services.units import units_changed
from backorders.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass
class ProductResult:
    product: ProductOut
    created: bool
    refunds: int = 0


async def put_product(engine: AsyncEngine, sku: str, body: ProductIn,
                      settings: Settings | None = None, *,
                      hand_off: HandOff | None = None, audit: Audit | None = None) -> ProductResult:
    """Create or update a product. Discontinuing it cancels what its lines wait for (units
    already allocated still ship) and records a refund for each; a policy change re-dates
    the queue."""
    settings = settings or get_settings()

    if sku in body.substitutes:
        raise Invalid("substitutes", "a product is not its own substitute", field="substitutes")

    async def work(uow: UnitOfWork) -> ProductResult:
        conn = uow.conn
        if body.supplier_id is not None:  # named by the ERP before any purchase order
            await conn.execute(sa.text(
                "INSERT INTO suppliers (id) VALUES (:id) ON CONFLICT (id) DO NOTHING"),
                {"id": body.supplier_id})
        row = (
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO products (sku, name, backorder_allowed, backorder_max_quantity,
                                          discontinued, allocation_policy, low_stock_threshold,
                                          backorder_until, list_price, substitutes,
                                          supplier_id, lead_time_days)
                    VALUES (:sku, :name, :allowed, :max_quantity, :discontinued, :policy,
                            :threshold, :until, :list_price, :substitutes, :supplier_id,
                            :lead_time_days)
                    ON CONFLICT (sku) DO UPDATE SET
                        name = EXCLUDED.name,
                        backorder_allowed = EXCLUDED.backorder_allowed,
                        backorder_max_quantity = EXCLUDED.backorder_max_quantity,
                        discontinued = EXCLUDED.discontinued,
                        allocation_policy = EXCLUDED.allocation_policy,
                        low_stock_threshold = EXCLUDED.low_stock_threshold,
                        backorder_until = EXCLUDED.backorder_until,
                        list_price = EXCLUDED.list_price,
                        substitutes = EXCLUDED.substitutes,
                        supplier_id = EXCLUDED.supplier_id,
                        lead_time_days = EXCLUDED.lead_time_days,
                        updated_at = now()
                    RETURNING *, (xmax = 0) AS created
                    """
                ),
                {
                    "sku": sku,
                    "name": body.name,
                    "allowed": body.backorder.allowed,
                    "max_quantity": body.backorder.max_quantity,
                    "discontinued": body.backorder.discontinued,
                    "policy": body.allocation_policy.value,
                    "threshold": body.low_stock_threshold,
                    "until": body.backorder_until,
                    "list_price": body.list_price,
                    "substitutes": body.substitutes,
                    "supplier_id": body.supplier_id,
                    "lead_time_days": body.lead_time_days,
                },
            )
        ).one()
        await conn.execute(
            sa.text("INSERT INTO stock (sku) VALUES (:sku) ON CONFLICT DO NOTHING"), {"sku": sku}
        )
        if row.created:
            return ProductResult(_product_out(row), True)
        stock_rows = await stock.lock(conn, [sku])
        if body.backorder.discontinued:
            return ProductResult(_product_out(row), False, await _discontinue(uow, sku))
        await units_changed(uow, stock_rows.values(), queue_changed=True)  # a new policy
        return ProductResult(_product_out(row), False)

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)


async def _discontinue(uow: UnitOfWork, sku: str) -> int:
    """Cancel what the SKU's lines wait for; returns the refunds requested."""
    conn = uow.conn
    waiting = (await conn.execute(sa.text(
        """
        SELECT l.id, l.sku, l.order_id, l.customer_id, l.unit_price FROM order_lines l
        WHERE l.sku = :sku AND l.waiting_quantity > 0 ORDER BY l.id
        """), {"sku": sku})).all()
    reason = f"{sku} is discontinued and will not be restocked"
    # Units already in hand still ship: only what would wait for a restock is cancelled.
    done = await orders.cancel_lines(uow, waiting, reason, waiting_only=True, skus=[sku],
                                     release_label=f"units freed by discontinuing {sku}")
    refunds = [{"line": ln.id, "order": ln.order_id, "customer": ln.customer_id, "sku": sku,
                "quantity": done.per_line[ln.id],
                "amount": ln.unit_price * done.per_line[ln.id], "reason": reason}
               for ln in waiting if done.per_line.get(ln.id)]
    if refunds:
        await conn.execute(sa.text(
            """
            INSERT INTO refunds (line_id, order_id, customer_id, sku, quantity, amount, reason)
            VALUES (:line, :order, :customer, :sku, :quantity, :amount, :reason)
            """), refunds)
    log.info("%s discontinued: %d waiting line(s) cancelled, %d refund(s) requested", sku,
             len(done.per_line), len(refunds))
    return len(refunds)


async def list_refunds(engine: AsyncEngine, *, sku: str | None = None,
                       customer_id: str | None = None, limit: int = 100,
                       offset: int = 0) -> list[sa.Row]:
    where, params = ["true"], {"limit": limit, "offset": offset}
    for column, value in (("sku", sku), ("customer_id", customer_id)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text(
            f"SELECT * FROM refunds WHERE {' AND '.join(where)} ORDER BY id "
            "LIMIT :limit OFFSET :offset"), params)).all())


async def get_product(engine: AsyncEngine, sku: str) -> ProductOut:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.text("SELECT * FROM products WHERE sku = :sku"), {"sku": sku})
        ).one_or_none()
    if row is None:
        raise NotFound("unknown_sku", f"no product with SKU {sku!r}", field="sku")
    return _product_out(row)


def _product_out(row: sa.Row) -> ProductOut:
    return ProductOut(
        sku=row.sku,
        name=row.name,
        backorder=BackorderPolicy(
            allowed=row.backorder_allowed,
            max_quantity=row.backorder_max_quantity,
            discontinued=row.discontinued,
        ),
        allocation_policy=row.allocation_policy,
        low_stock_threshold=row.low_stock_threshold,
        backorder_until=row.backorder_until,
        list_price=row.list_price,
        substitutes=list(row.substitutes or ()),
        supplier_id=row.supplier_id,
        lead_time_days=row.lead_time_days,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_inventory(engine: AsyncEngine, sku: str) -> InventoryOut:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT on_hand, reserved, backordered FROM stock WHERE sku = :sku"),
                {"sku": sku},
            )
        ).one_or_none()
    if row is None:
        raise NotFound("unknown_sku", f"no product with SKU {sku!r}", field="sku")
    return InventoryOut(
        sku=sku, on_hand=row.on_hand, reserved=row.reserved,
        available=row.on_hand - row.reserved, backordered=row.backordered,
    )


async def count_stock(
    engine: AsyncEngine, sku: str, body: StockCountIn, settings: Settings, *,
    hand_off: HandOff | None = None,
    audit: Audit | None = None,
) -> InventoryOut:
    """Set the counted on-hand figure. An increase serves the queue like a receipt; a
    count below what is already reserved for customers is refused, not silently oversold."""

    async def work(uow: UnitOfWork) -> InventoryOut:
        conn = uow.conn
        row = (await stock.lock(conn, [sku])).get(sku)
        if row is None:
            raise NotFound("unknown_sku", f"no product with SKU {sku!r}", field="sku")
        if body.on_hand < row.reserved:
            raise Conflict(
                "count_below_reserved",
                f"on_hand {body.on_hand} is below the {row.reserved} unit(s) already reserved "
                f"for customer lines of {sku}; cancel or ship those first",
                field="on_hand",
            )
        delta = body.on_hand - row.on_hand
        served = []
        if delta:
            row.on_hand = body.on_hand
            await stock.record_movement(conn, row, delta, "stock_count", body.reference)
            settled = await units_changed(uow, [row],
                                          restock=Restock("stock_count", "a stock count"))
            served = settled.of(sku)
            log.info("stock count %s: on hand %+d to %d, %d unit(s) allocated to waiting lines",
                     sku, delta, row.on_hand, sum(a.quantity for a in served))
        return InventoryOut(
            sku=sku, on_hand=row.on_hand, reserved=row.reserved, available=row.available,
            backordered=row.backordered,
            allocated=[AllocationOut(allocation_id=a.allocation_id, line_id=a.line_id,
                                     order_id=a.order_id, quantity=a.quantity)
                       for a in served])

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)
