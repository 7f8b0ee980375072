"""Incoming supply: what open purchase order lines have still to deliver. The expected
dates are walked against it, and the staff shortfall alert compares waiting units with
it, so both read it from here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
SUPPLIER_OPEN_SKUS = """
    SELECT DISTINCT pl.sku
    FROM purchase_order_lines pl JOIN purchase_orders po USING (po_number)
    WHERE po.supplier_id = (SELECT supplier_id FROM purchase_orders WHERE po_number = :po)
      AND po.status = 'open' AND NOT pl.cancelled AND pl.received_quantity < pl.quantity
    ORDER BY pl.sku
"""
"""The SKUs that the supplier of purchase order `:po` still has units of to deliver."""


async def incoming_units(conn: AsyncConnection, sku: str) -> int:
    """Units of `sku` that open purchase orders have still to deliver."""
    return (await conn.execute(
        sa.text(f"SELECT coalesce(sum({OUTSTANDING}), 0) {OPEN_SUPPLY}"), {"sku": sku}
    )).scalar_one()


async def open_lines(conn: AsyncConnection, skus: Sequence[str]) -> list[Any]:
    """The open purchase order lines of `skus` that still have units to deliver, with
    their supplier and dates: `sku, supplier_id, expected_at, promised_at, outstanding`."""
    return list((await conn.execute(sa.text(
        f"""
        SELECT pl.sku, po.supplier_id, pl.expected_at, pl.promised_at,
               {OUTSTANDING} AS outstanding
        {OPEN_SUPPLY.replace("pl.sku = :sku", "pl.sku = ANY(:skus)")}
        ORDER BY pl.sku, pl.expected_at, pl.po_number
        """), {"skus": list(skus)})).all())
