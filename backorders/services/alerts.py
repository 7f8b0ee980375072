"""When staff are alerted (F16): the rules, in one place, evaluated inside the
transaction that changed the stock (by `units.units_changed`), so an alert is recorded
exactly when its cause is. The notification service sends them after commit."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from backorders.notify.message import Event
from backorders.notify.service import cooled_down, record_staff_alert
from backorders.notify.templates import IntakeFacts, ReceiptFacts, StockFacts
from backorders.services.allocation import Allocated, ReceivedLot
from backorders.services.incoming import incoming_units
from backorders.services.stock import StockRow
from backorders.services.unit_of_work import UnitOfWork


async def _facts(uow: UnitOfWork, row: StockRow, incoming: int | None = None) -> StockFacts:
    if incoming is None:
        incoming = await incoming_units(uow.conn, row.sku)
    found = (await uow.conn.execute(sa.text(
        """
        SELECT p.name, count(l.id) AS lines
        FROM products p LEFT JOIN order_lines l ON l.sku = p.sku AND l.waiting_quantity > 0
        WHERE p.sku = :sku GROUP BY p.name
        """), {"sku": row.sku})).one()
    return StockFacts(
        sku=row.sku, product_name=found.name, on_hand=row.on_hand, available=row.available,
        waiting_units=row.backordered, waiting_lines=found.lines,
        threshold=row.low_stock_threshold, incoming_units=incoming)


async def stock_changed(uow: UnitOfWork, row: StockRow) -> None:
    """Stock below the SKU's threshold: purchasing hears, once per cool-down."""
    threshold = row.low_stock_threshold
    if threshold is None or row.available >= threshold:
        return
    settings = uow.settings
    fired = await cooled_down(uow.conn, row.sku, "low_stock", settings.staff_alert_cooldown_hours)
    if fired is not None:
        await record_staff_alert(uow.conn, settings, Event.LOW_STOCK,
                                 key=f"low_stock:{row.sku}:{fired.isoformat()}", sku=row.sku,
                                 stock=await _facts(uow, row))


async def check_shortfall(uow: UnitOfWork, row: StockRow) -> None:
    """More units waiting than open purchase orders will bring: purchasing and sales hear
    before customers start asking, once per cool-down."""
    if row.backordered <= 0:
        return
    incoming = await incoming_units(uow.conn, row.sku)
    if row.backordered <= incoming:
        return
    settings = uow.settings
    fired = await cooled_down(uow.conn, row.sku, "supply_shortfall",
                              settings.staff_alert_cooldown_hours)
    if fired is not None:
        await record_staff_alert(uow.conn, settings, Event.SUPPLY_SHORTFALL,
                                 key=f"supply_shortfall:{row.sku}:{fired.isoformat()}",
                                 sku=row.sku, stock=await _facts(uow, row, incoming))


async def receipt_processed(uow: UnitOfWork, row: StockRow, receipt: ReceivedLot,
                            allocations: Sequence[Allocated]) -> None:
    """A receipt served waiting lines: sales and purchasing see the backorders processed."""
    if not allocations:
        return
    allocated = sum(a.quantity for a in allocations)
    await record_staff_alert(
        uow.conn, uow.settings, Event.RECEIPT_PROCESSED,
        key=f"receipt_processed:{receipt.receipt_id}", sku=row.sku,
        receipt=ReceiptFacts(receipt_id=receipt.receipt_id, sku=row.sku,
                             quantity=receipt.quantity, allocated_quantity=allocated,
                             lines_served=len({a.line_id for a in allocations}),
                             to_stock_quantity=receipt.quantity - allocated))


async def intake_parked(uow: UnitOfWork, facts: IntakeFacts) -> None:
    """An order a channel sent is parked dead: sales hear, once per channel and reason
    per cool-down (a missing product can park a hundred orders in a minute)."""
    fired = await cooled_down(uow.conn, f"intake:{facts.channel}", f"intake_dead:{facts.reason}",
                              uow.settings.staff_alert_cooldown_hours)
    if fired is not None:
        await record_staff_alert(
            uow.conn, uow.settings, Event.INTAKE_DEAD,
            key=f"intake_dead:{facts.channel}:{facts.reason}:{fired.isoformat()}", sku=None,
            intake=facts)
