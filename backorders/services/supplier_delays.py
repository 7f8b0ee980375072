"""Suppliers' delivery history as delay samples: per supplier, how many days each receipt
against one of its purchase order lines came after the line's promised date (negative:
early). The ETA walk turns them into likely and latest dates (`domain.delays`)."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DELAY_DAYS = "r.received_at::date - pl.promised_at"
"""A receipt `r`'s delay against its purchase order line `pl`, as `suppliers._PERFORMANCE`
measures it."""

RECENT = 200
"""Receipts per supplier the quantiles are read from: its latest, so the record follows
how the supplier delivers now, and reading it costs the same however long it has
supplied us."""

_SAMPLES = f"""
    SELECT supplier_id, delay_days FROM (
        SELECT po.supplier_id, {DELAY_DAYS} AS delay_days, r.received_at, r.receipt_id,
               row_number() OVER (PARTITION BY po.supplier_id
                                  ORDER BY r.received_at DESC, r.receipt_id DESC) AS recent
        FROM receipts r
        JOIN purchase_order_lines pl ON pl.po_number = r.purchase_order AND pl.sku = r.sku
        JOIN purchase_orders po ON po.po_number = pl.po_number
        {{where}}
    ) s
    WHERE recent <= {RECENT}
    ORDER BY supplier_id, received_at, receipt_id
"""


async def delay_samples(conn: AsyncConnection,
                        supplier_ids: Collection[str] | None = None) -> dict[str, list[int]]:
    """Per supplier (only those with receipts; all of them when `supplier_ids` is None),
    the delay in days of each of its latest `RECENT` receipts, oldest first."""
    if supplier_ids is not None:
        ids = sorted(set(supplier_ids))
        if not ids:
            return {}
        rows = (await conn.execute(sa.text(_SAMPLES.format(
            where="WHERE po.supplier_id = ANY(:ids)")), {"ids": ids})).all()
    else:
        rows = (await conn.execute(sa.text(_SAMPLES.format(where="")))).all()
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r.supplier_id, []).append(int(r.delay_days))
    return out
