"""Read models for the API: orders, and the backorder queues with positions and age."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.domain.lifecycle import IN_PROGRESS, LineStatus, order_status
from backorders.domain.queue import ahead_of_column, queue_order_by_column
from backorders.schemas import (
    AllocationDetail,
    BackorderDetailOut,
    BackorderOut,
    BackorderPage,
    CustomerOut,
    OrderLineOut,
    OrderOut,
    TimelineEventOut,
)
from backorders.services import substitutes
from backorders.services.errors import NotFound, unknown_line, unknown_order

STEPS = [s.value for s in IN_PROGRESS]

IN_PROGRESS_QTY = """
    (SELECT coalesce(sum(a.quantity), 0) FROM allocations a
     WHERE a.line_id = l.id AND a.status = ANY(:steps))
"""


async def get_order(engine: AsyncEngine, order_id: uuid.UUID) -> OrderOut:
    async with engine.connect() as conn:
        order = (
            await conn.execute(sa.text("SELECT * FROM orders WHERE id = :id"), {"id": order_id})
        ).one_or_none()
        if order is None:
            raise unknown_order(order_id)
        rows = (
            await conn.execute(
                sa.text(
                    f"""
                    SELECT l.*, {IN_PROGRESS_QTY} AS in_progress,
                           CASE WHEN l.waiting_quantity > 0 THEN (
                               SELECT count(*) + 1 FROM order_lines q
                               WHERE q.sku = l.sku AND q.waiting_quantity > 0
                                 AND {ahead_of_column("p.allocation_policy", "q", "l")}
                           ) END AS position
                    FROM order_lines l JOIN products p ON p.sku = l.sku
                    WHERE l.order_id = :id ORDER BY l.line_no
                    """
                ),
                {"id": order_id, "steps": STEPS},
            )
        ).all()
    lines = [
        OrderLineOut(
            id=r.id, line_no=r.line_no, sku=r.sku, quantity=r.quantity, unit_price=r.unit_price,
            fulfillable_quantity=r.fulfillable_quantity, backordered_quantity=r.waiting_quantity,
            in_progress_quantity=r.in_progress, shipped_quantity=r.shipped_quantity,
            cancelled_quantity=r.cancelled_quantity, status=r.status, workflow_id=r.workflow_id,
            promised_date=r.promised_date, queue_position=r.position,
            expected_date=r.expected_date if r.waiting_quantity > 0 else None,
            likely_date=r.likely_date if r.waiting_quantity > 0 else None,
            latest_date=r.latest_date if r.waiting_quantity > 0 else None,
            no_supply=bool(r.no_supply and r.waiting_quantity > 0),
        )
        for r in rows
    ]
    return OrderOut(
        id=order.id, channel=order.channel, order_number=order.order_number,
        placed_at=order.placed_at, status=order_status(ln.status for ln in lines),
        ship_complete=order.ship_complete, released_at=order.released_at,
        order_value=order.order_value,
        customer=CustomerOut(id=order.customer_id, email=order.customer_email,
                             phone=order.customer_phone, tier=order.customer_tier),
        lines=lines, created_at=order.created_at, cancelled_at=order.cancelled_at,
        cancel_reason=order.cancel_reason,
    )


async def find_order(engine: AsyncEngine, channel: str, order_number: str) -> OrderOut:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT id FROM orders WHERE channel = :c AND order_number = :n"),
                {"c": channel, "n": order_number},
            )
        ).one_or_none()
    if row is None:
        raise NotFound("unknown_order", f"no order {order_number!r} from channel {channel!r}",
                       field="order_number")
    return await get_order(engine, row.id)


def _backorder_query(where: str, sku_filter: str) -> str:
    order_by = queue_order_by_column("p.allocation_policy")
    return f"""
    WITH queue AS (
        SELECT l.id,
               row_number() OVER w AS position,
               sum(l.waiting_quantity) OVER w - l.waiting_quantity AS units_ahead
        FROM order_lines l JOIN products p ON p.sku = l.sku
        WHERE l.waiting_quantity > 0 {sku_filter}
        WINDOW w AS (PARTITION BY l.sku ORDER BY {order_by} ROWS UNBOUNDED PRECEDING)
    )
    SELECT l.*, o.order_number, o.channel, o.customer_tier, q.position, q.units_ahead,
           {IN_PROGRESS_QTY} AS in_progress,
           CAST(extract(epoch FROM now() - l.created_at) AS bigint) AS age_seconds,
           count(*) OVER () AS total
    FROM order_lines l
    JOIN orders o ON o.id = l.order_id
    LEFT JOIN queue q ON q.id = l.id
    WHERE {where}
    ORDER BY l.sku, q.position NULLS LAST, l.created_at, l.seq
    LIMIT :limit OFFSET :offset
    """


def backorder_out(r: sa.Row) -> BackorderOut:
    return BackorderOut(
        line_id=r.id, order_id=r.order_id, order_number=r.order_number, channel=r.channel,
        sku=r.sku, customer_id=r.customer_id, customer_tier=r.customer_tier,
        quantity=r.quantity, backordered_quantity=r.waiting_quantity,
        in_progress_quantity=r.in_progress, shipped_quantity=r.shipped_quantity,
        cancelled_quantity=r.cancelled_quantity, status=r.status, queue_position=r.position,
        units_ahead=r.units_ahead, placed_at=r.placed_at, backordered_at=r.created_at,
        expected_date=r.expected_date if r.waiting_quantity > 0 else None,
        likely_date=r.likely_date if r.waiting_quantity > 0 else None,
        latest_date=r.latest_date if r.waiting_quantity > 0 else None,
        no_supply=bool(r.no_supply and r.waiting_quantity > 0),
        age_seconds=r.age_seconds, workflow_id=r.workflow_id,
    )


async def list_backorders(
    engine: AsyncEngine,
    *,
    sku: str | None = None,
    status: LineStatus | None = None,
    customer_id: str | None = None,
    channel: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> BackorderPage:
    """Lines that were backordered. Without a status filter: those still waiting."""
    where = ["l.initial_backordered > 0"]
    params: dict[str, object] = {"steps": STEPS, "limit": limit, "offset": offset}
    if status is None:
        where.append("l.waiting_quantity > 0")
    else:
        where.append("l.status = :status")
        params["status"] = status.value
    if sku is not None:
        where.append("l.sku = :sku")
        params["sku"] = sku
    if customer_id is not None:
        where.append("l.customer_id = :customer_id")
        params["customer_id"] = customer_id
    if channel is not None:
        where.append("o.channel = :channel")
        params["channel"] = channel
    sku_filter = "AND l.sku = :sku" if sku is not None else ""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.text(_backorder_query(" AND ".join(where), sku_filter)), params)
        ).all()
    return BackorderPage(
        items=[backorder_out(r) for r in rows],
        total=rows[0].total if rows else 0,
        limit=limit,
        offset=offset,
    )


async def get_backorder(engine: AsyncEngine, line_id: uuid.UUID) -> BackorderDetailOut:
    async with engine.connect() as conn:
        sku = (
            await conn.execute(sa.text("SELECT sku FROM order_lines WHERE id = :id"), {"id": line_id})
        ).scalar_one_or_none()
        if sku is None:
            raise unknown_line(line_id)
        row = (
            await conn.execute(
                sa.text(_backorder_query("l.id = :id", "AND l.sku = :sku")),
                {"id": line_id, "sku": sku, "steps": STEPS, "limit": 1, "offset": 0},
            )
        ).one()
        allocations = (
            await conn.execute(
                sa.text("SELECT * FROM allocations WHERE line_id = :id ORDER BY created_at, id"),
                {"id": line_id},
            )
        ).all()
        events = (
            await conn.execute(
                sa.text("SELECT * FROM line_events WHERE line_id = :id ORDER BY id"),
                {"id": line_id},
            )
        ).all()
        offered = []
        if row.no_supply and row.waiting_quantity > 0:
            listed = (await conn.execute(sa.text("SELECT substitutes FROM products WHERE sku = :s"),
                                         {"s": sku})).scalar_one()
            offered = await substitutes.in_stock(conn, listed)
    return BackorderDetailOut(
        **backorder_out(row).model_dump(),
        allocations=[
            AllocationDetail(
                allocation_id=a.id, quantity=a.quantity, source=a.source,
                receipt_id=a.receipt_id, status=a.status, tracking_number=a.tracking_number,
                created_at=a.created_at, dispatched_at=a.dispatched_at,
            )
            for a in allocations
        ],
        timeline=[TimelineEventOut(at=e.at, kind=e.kind, message=e.message, data=e.data)
                  for e in events],
        substitutes=offered,
    )
