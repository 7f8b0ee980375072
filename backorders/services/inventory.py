"""Products, their policies, and counted stock."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import transaction
from backorders.notify import alerts
from backorders.schemas import (
    AllocationOut,
    BackorderPolicy,
    InventoryOut,
    ProductIn,
    ProductOut,
    StockCountIn,
)
from backorders.services import orders, stock, supply
from backorders.services.allocation import allocate_to_queue
from backorders.services.errors import Conflict, NotFound
from backorders.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass
class ProductResult:
    product: ProductOut
    created: bool
    outbox_ids: list[int]
    refunds: int = 0


async def put_product(engine: AsyncEngine, sku: str, body: ProductIn,
                      settings: Settings | None = None) -> ProductResult:
    """Create or update a product. Discontinuing it cancels what its lines wait for (units
    already allocated still ship) and records a refund for each; a policy change re-dates
    the queue."""
    settings = settings or get_settings()

    async def work(conn: AsyncConnection) -> ProductResult:
        row = (
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO products (sku, name, backorder_allowed, backorder_max_quantity,
                                          discontinued, allocation_policy, low_stock_threshold,
                                          backorder_until)
                    VALUES (:sku, :name, :allowed, :max_quantity, :discontinued, :policy,
                            :threshold, :until)
                    ON CONFLICT (sku) DO UPDATE SET
                        name = EXCLUDED.name,
                        backorder_allowed = EXCLUDED.backorder_allowed,
                        backorder_max_quantity = EXCLUDED.backorder_max_quantity,
                        discontinued = EXCLUDED.discontinued,
                        allocation_policy = EXCLUDED.allocation_policy,
                        low_stock_threshold = EXCLUDED.low_stock_threshold,
                        backorder_until = EXCLUDED.backorder_until,
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
                },
            )
        ).one()
        await conn.execute(
            sa.text("INSERT INTO stock (sku) VALUES (:sku) ON CONFLICT DO NOTHING"), {"sku": sku}
        )
        if row.created:
            return ProductResult(_product_out(row), True, [])
        await stock.lock(conn, [sku])
        outbox_ids: list[int] = []
        refunds = 0
        if body.backorder.discontinued:
            refunds, outbox_ids = await _discontinue(conn, sku, settings)
        outbox_ids += await supply.refresh_expected_dates(conn, sku, settings)
        return ProductResult(_product_out(row), False, outbox_ids, refunds)

    return await transaction(engine, work)


async def _discontinue(conn: AsyncConnection, sku: str, settings: Settings) -> tuple[int, list[int]]:
    waiting = (await conn.execute(sa.text(
        """
        SELECT l.id, l.sku, l.order_id, l.customer_id, l.unit_price FROM order_lines l
        WHERE l.sku = :sku AND l.waiting_quantity > 0 ORDER BY l.id
        """), {"sku": sku})).all()
    if not waiting:
        return 0, []
    reason = f"{sku} is discontinued and will not be restocked"
    # Units already in hand still ship: only what would wait for a restock is cancelled.
    done = await orders.cancel_lines(conn, waiting, reason, settings, waiting_only=True,
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
    return len(refunds), done.outbox_ids


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


@dataclass
class CountResult:
    inventory: InventoryOut
    outbox_ids: list[int]


async def count_stock(
    engine: AsyncEngine, sku: str, body: StockCountIn, settings: Settings
) -> CountResult:
    """Set the counted on-hand figure. An increase serves the queue like a receipt; a
    count below what is already reserved for customers is refused, not silently oversold."""

    async def work(conn: AsyncConnection) -> CountResult:
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
        run_allocations: list[AllocationOut] = []
        outbox_ids: list[int] = []
        if delta:
            row.on_hand = body.on_hand
            await stock.save(conn, row)
            await stock.record_movement(conn, row, delta, "stock_count", body.reference)
            run = await allocate_to_queue(
                conn, row, settings, source="stock_count", label="a stock count"
            )
            outbox_ids = run.inline_outbox_ids
            outbox_ids += await supply.refresh_expected_dates(conn, sku, settings)
            await alerts.stock_changed(conn, row, settings)
            log.info("stock count %s: on hand %+d to %d, %d unit(s) allocated to waiting lines",
                     sku, delta, row.on_hand, sum(a.quantity for a in run.allocations))
            run_allocations = [
                AllocationOut(allocation_id=a.allocation_id, line_id=a.line_id,
                              order_id=a.order_id, quantity=a.quantity)
                for a in run.allocations
            ]
        return CountResult(
            InventoryOut(sku=sku, on_hand=row.on_hand, reserved=row.reserved,
                         available=row.available, backordered=row.backordered,
                         allocated=run_allocations),
            outbox_ids,
        )

    return await transaction(engine, work)
