"""Read models for the dashboard: the BackOrder tab's filtered, sorted, paginated list of
waiting lines, the per-SKU summary, and notification health. Everything is filtered,
sorted and paginated in SQL, so a page costs the same with ten or ten thousand lines."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.domain.queue import queue_order_by_column
from backorders.schemas import BackorderOut
from backorders.services.incoming import OUTSTANDING
from backorders.services.views import IN_PROGRESS_QTY, STEPS, backorder_out


class Sort(StrEnum):
    QUEUE = "queue"
    """By SKU, then place in the SKU's allocation queue: who gets the next unit."""
    OLDEST = "oldest"
    EXPECTED = "expected"
    """Earliest expected date first: closest to restock."""
    QUANTITY = "quantity"
    CUSTOMER = "customer"
    ORDER = "order"


class View(StrEnum):
    ALL = "all"
    CLOSEST = "closest"
    """Closest to restock: lines with an expected date, earliest first."""
    SOURCING = "sourcing"
    """Needing alternative sourcing: no supply covers them, or they waited too long."""


_ORDER_BY = {
    Sort.QUEUE: "l.sku, q.position, l.seq",
    Sort.OLDEST: "l.created_at, l.seq",
    Sort.EXPECTED: "l.expected_date NULLS LAST, l.sku, q.position, l.seq",
    Sort.QUANTITY: "l.waiting_quantity DESC, l.created_at, l.seq",
    Sort.CUSTOMER: "l.customer_id, l.created_at, l.seq",
    Sort.ORDER: "o.order_number, l.line_no",
}


@dataclass(frozen=True)
class BoardFilter:
    sku: str | None = None
    order_number: str | None = None
    customer_id: str | None = None
    channel: str | None = None
    tier: str | None = None
    status: str | None = None
    min_age_days: int | None = None
    max_age_days: int | None = None
    no_supply: bool | None = None
    view: View = View.ALL

    def active(self) -> dict[str, Any]:
        """The filters set, as they appear in the URL."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) not in (None, View.ALL)}


@dataclass
class BoardPage:
    items: list[BackorderOut]
    total: int
    units: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _where(f: BoardFilter, sourcing_after_days: int) -> tuple[list[str], dict[str, Any]]:
    where, params = ["l.waiting_quantity > 0"], {}
    for column, value in (("l.sku", f.sku), ("o.order_number", f.order_number),
                          ("l.customer_id", f.customer_id), ("o.channel", f.channel),
                          ("o.customer_tier", f.tier), ("l.status", f.status)):
        if value is not None:
            name = column.split(".")[1]
            where.append(f"{column} = :{name}")
            params[name] = value
    if f.min_age_days is not None:
        where.append("l.created_at <= now() - make_interval(days => :min_age)")
        params["min_age"] = f.min_age_days
    if f.max_age_days is not None:
        where.append("l.created_at > now() - make_interval(days => :max_age + 1)")
        params["max_age"] = f.max_age_days
    if f.no_supply is not None:
        where.append("l.no_supply = :no_supply")
        params["no_supply"] = f.no_supply
    if f.view is View.CLOSEST:
        where.append("l.expected_date IS NOT NULL AND NOT l.no_supply")
    elif f.view is View.SOURCING:
        where.append("(l.no_supply OR l.created_at <= now() - make_interval(days => :sourcing))")
        params["sourcing"] = sourcing_after_days
    return where, params


async def backorder_board(engine: AsyncEngine, f: BoardFilter, *, sort: Sort = Sort.QUEUE,
                          page: int = 1, per_page: int = 50,
                          sourcing_after_days: int = 14) -> BoardPage:
    """Waiting lines matching the filter, with their queue position (in the SKU's whole
    queue, not the filtered one) and age."""
    where, params = _where(f, sourcing_after_days)
    if f.view is View.CLOSEST and sort is Sort.QUEUE:
        sort = Sort.EXPECTED
    sku_filter = "AND l.sku = :sku" if f.sku is not None else ""
    sql = f"""
    WITH queue AS (
        SELECT l.id,
               row_number() OVER w AS position,
               sum(l.waiting_quantity) OVER w - l.waiting_quantity AS units_ahead
        FROM order_lines l JOIN products p ON p.sku = l.sku
        WHERE l.waiting_quantity > 0 {sku_filter}
        WINDOW w AS (PARTITION BY l.sku ORDER BY {queue_order_by_column("p.allocation_policy")}
                     ROWS UNBOUNDED PRECEDING)
    )
    SELECT l.*, o.order_number, o.channel, o.customer_tier, q.position, q.units_ahead,
           {IN_PROGRESS_QTY} AS in_progress,
           CAST(extract(epoch FROM now() - l.created_at) AS bigint) AS age_seconds,
           count(*) OVER () AS total, sum(l.waiting_quantity) OVER () AS total_units
    FROM order_lines l
    JOIN orders o ON o.id = l.order_id
    JOIN queue q ON q.id = l.id
    WHERE {" AND ".join(where)}
    ORDER BY {_ORDER_BY[sort]}
    LIMIT :limit OFFSET :offset
    """
    params |= {"steps": STEPS, "limit": per_page, "offset": (page - 1) * per_page}
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(sql), params)).all()
    return BoardPage(items=[backorder_out(r) for r in rows],
                     total=int(rows[0].total) if rows else 0,
                     units=int(rows[0].total_units) if rows else 0, page=page,
                     per_page=per_page)


_PRODUCTS = f"""
    WITH waiting AS (
        SELECT l.sku, sum(l.waiting_quantity) AS units, count(*) AS lines,
               min(l.created_at) AS oldest, count(*) FILTER (WHERE l.no_supply) AS no_supply
        FROM order_lines l WHERE l.waiting_quantity > 0 {{sku_filter}}
        GROUP BY l.sku
    ), supply AS (
        SELECT pl.sku, sum({OUTSTANDING}) AS incoming,
               min(pl.expected_at) AS next_date,
               (array_agg(pl.po_number ORDER BY pl.expected_at, pl.po_number))[1] AS next_po
        FROM purchase_order_lines pl JOIN purchase_orders po USING (po_number)
        WHERE po.status = 'open' AND NOT pl.cancelled AND pl.received_quantity < pl.quantity
          AND pl.sku IN (SELECT sku FROM waiting)
        GROUP BY pl.sku
    )
    SELECT w.*, p.name, p.allocation_policy, p.discontinued,
           greatest(s.on_hand - s.reserved, 0) AS available,
           coalesce(su.incoming, 0) AS incoming, su.next_po, su.next_date,
           count(*) OVER () AS total
    FROM waiting w JOIN products p ON p.sku = w.sku JOIN stock s ON s.sku = w.sku
    LEFT JOIN supply su ON su.sku = w.sku
    ORDER BY {{order_by}}
    LIMIT :limit OFFSET :offset
"""

PRODUCT_SORTS = {"units": "w.units DESC, w.sku", "oldest": "w.oldest, w.sku",
                 "lines": "w.lines DESC, w.sku", "sku": "w.sku"}


@dataclass
class ProductSummary:
    sku: str
    name: str | None
    units: int
    lines: int
    oldest: datetime
    no_supply_lines: int
    available: int
    incoming: int
    next_po: str | None
    next_date: Any
    allocation_policy: str
    discontinued: bool

    @property
    def coverage(self) -> float:
        """Share of the waiting units that stock on hand and open purchase orders cover."""
        return min(1.0, (self.available + self.incoming) / self.units) if self.units else 1.0


async def product_summaries(engine: AsyncEngine, *, sku: str | None = None,
                            sort: str = "units", page: int = 1,
                            per_page: int = 50) -> tuple[list[ProductSummary], int]:
    """SKUs with lines waiting: units, lines, oldest wait, next purchase order, coverage."""
    sql = _PRODUCTS.format(sku_filter="AND l.sku = :sku" if sku else "",
                           order_by=PRODUCT_SORTS[sort])
    params: dict[str, Any] = {"limit": per_page, "offset": (page - 1) * per_page}
    if sku:
        params["sku"] = sku
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(sql), params)).all()
    return [ProductSummary(
        sku=r.sku, name=r.name, units=int(r.units), lines=int(r.lines), oldest=r.oldest,
        no_supply_lines=int(r.no_supply), available=int(r.available), incoming=int(r.incoming),
        next_po=r.next_po, next_date=r.next_date, allocation_policy=r.allocation_policy,
        discontinued=r.discontinued) for r in rows], (int(rows[0].total) if rows else 0)


async def notification_health(engine: AsyncEngine, start: datetime,
                              end: datetime) -> dict[str, Any]:
    """Customer messages in the period by channel and event (sent, failed, suppressed,
    waiting), the latest failures with their reasons, and the latest opt-outs."""
    async with engine.connect() as conn:
        by = (await conn.execute(sa.text("""
            SELECT coalesce(channel, '-') AS channel, event,
                   count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'suppressed') AS suppressed,
                   count(*) FILTER (WHERE status IN ('pending', 'queued')) AS waiting,
                   count(*) FILTER (WHERE status = 'digested') AS digested
            FROM notifications
            WHERE audience = 'customer' AND created_at >= :start AND created_at < :end
            GROUP BY 1, 2 ORDER BY 1, 2
        """), {"start": start, "end": end})).mappings().all()
        failures = (await conn.execute(sa.text("""
            SELECT id, event, channel, customer_id, line_id, reason, failed_at
            FROM notifications WHERE status = 'failed' AND failed_at >= :start
              AND failed_at < :end
            ORDER BY failed_at DESC LIMIT 50
        """), {"start": start, "end": end})).mappings().all()
        opt_outs = (await conn.execute(sa.text("""
            SELECT customer_id, channel, source, at FROM opt_outs
            WHERE at >= :start AND at < :end ORDER BY at DESC LIMIT 50
        """), {"start": start, "end": end})).mappings().all()
    rows = [dict(r) for r in by]
    for r in rows:
        done = r["sent"] + r["failed"]
        r["delivery_rate"] = r["sent"] / done if done else None
    return {"by_channel_event": rows, "failures": [dict(f) for f in failures],
            "opt_outs": [dict(o) for o in opt_outs]}


async def supplier_deliveries(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Per supplier, each receipt against a purchase order line: promised date, the day
    it arrived and how late (negative: early), oldest first."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("""
            SELECT po.supplier_id, r.sku, r.receipt_id, pl.promised_at AS promised,
                   CAST(r.received_at AT TIME ZONE 'UTC' AS date) AS received,
                   CAST(r.received_at AT TIME ZONE 'UTC' AS date) - pl.promised_at AS delay_days,
                   r.quantity
            FROM receipts r
            JOIN purchase_order_lines pl ON pl.po_number = r.purchase_order AND pl.sku = r.sku
            JOIN purchase_orders po ON po.po_number = pl.po_number
            ORDER BY po.supplier_id, r.received_at
        """))).mappings().all()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["supplier_id"], []).append(dict(r))
    return out
