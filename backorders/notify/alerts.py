"""When staff are alerted (F16): the rules, in one place, evaluated inside the
transaction that changed the stock, so an alert is recorded exactly when its cause is."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backorders.notify.message import Event
from backorders.notify.service import cooled_down, record_staff_alert
from backorders.notify.templates import ReceiptFacts, StockFacts
from backorders.services.stock import StockRow
from backorders.settings import Settings


async def incoming_units(conn: AsyncConnection, sku: str) -> int:
    """Units known to be on their way. Receipts are the only supply the ledger knows of
    until purchase orders are recorded, so nothing is incoming yet."""
    return 0


async def _facts(conn: AsyncConnection, row: StockRow) -> StockFacts:
    found = (await conn.execute(sa.text(
        """
        SELECT p.name, count(l.id) AS lines
        FROM products p LEFT JOIN order_lines l ON l.sku = p.sku AND l.waiting_quantity > 0
        WHERE p.sku = :sku GROUP BY p.name
        """), {"sku": row.sku})).one()
    return StockFacts(
        sku=row.sku, product_name=found.name, on_hand=row.on_hand, available=row.available,
        waiting_units=row.backordered, waiting_lines=found.lines,
        threshold=row.low_stock_threshold, incoming_units=await incoming_units(conn, row.sku))


async def stock_changed(conn: AsyncConnection, row: StockRow, settings: Settings) -> None:
    """Stock below the SKU's threshold: purchasing hears, once per cool-down."""
    threshold = row.low_stock_threshold
    if threshold is None or row.available >= threshold:
        return
    fired = await cooled_down(conn, row.sku, "low_stock", settings.staff_alert_cooldown_hours)
    if fired is not None:
        await record_staff_alert(conn, settings, Event.LOW_STOCK,
                                 key=f"low_stock:{row.sku}:{fired.isoformat()}", sku=row.sku,
                                 stock=await _facts(conn, row))


async def backorders_created(conn: AsyncConnection, row: StockRow, settings: Settings) -> None:
    """More units waiting than incoming supply covers: purchasing and sales hear before
    customers start asking."""
    if row.backordered <= await incoming_units(conn, row.sku):
        return
    fired = await cooled_down(conn, row.sku, "supply_shortfall",
                              settings.staff_alert_cooldown_hours)
    if fired is not None:
        await record_staff_alert(conn, settings, Event.SUPPLY_SHORTFALL,
                                 key=f"supply_shortfall:{row.sku}:{fired.isoformat()}",
                                 sku=row.sku, stock=await _facts(conn, row))


async def receipt_processed(conn: AsyncConnection, row: StockRow, receipt: ReceiptFacts,
                            settings: Settings) -> None:
    """A receipt served waiting lines: sales and purchasing see the backorders processed."""
    if receipt.lines_served:
        await record_staff_alert(conn, settings, Event.RECEIPT_PROCESSED,
                                 key=f"receipt_processed:{receipt.receipt_id}", sku=row.sku,
                                 receipt=receipt)
