"""Supplier performance: promised against actual receipt dates, and the waiting that
late deliveries caused."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.db import autocommit
from backorders.schemas import SupplierOut, SupplierPerformanceOut
from backorders.services.errors import NotFound

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
