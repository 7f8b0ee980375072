"""Incoming supply: what open purchase order lines have still to deliver. The expected
dates are walked against it, and the staff shortfall alert compares waiting units with
it, so both read it from here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

OUTSTANDING = "pl.quantity - pl.received_quantity"
"""Units a purchase order line `pl` has still to deliver."""
OPEN_SUPPLY = """
    FROM purchase_order_lines pl JOIN purchase_orders po USING (po_number)
    WHERE pl.sku = :sku AND po.status = 'open' AND NOT pl.cancelled
      AND pl.received_quantity < pl.quantity
"""
"""The SKU's open purchase order lines (`pl`) that still have units to deliver."""


async def incoming_units(conn: AsyncConnection, sku: str) -> int:
    """Units of `sku` that open purchase orders have still to deliver."""
    return (await conn.execute(
        sa.text(f"SELECT coalesce(sum({OUTSTANDING}), 0) {OPEN_SUPPLY}"), {"sku": sku}
    )).scalar_one()
