"""Restock allocation: hand a SKU's available units to its waiting lines in queue order.

One set-based statement walks the queue with a running sum, takes units from the front
until they run out (filling the last line partially if need be), writes the allocation
ledger, the lines' timeline and the hand-off outbox together, so 10,000 waiting lines
are served in one round trip. Called by `units.units_changed`, which holds the SKU's
stock lock and saves the stock row afterwards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from backorders.contracts.line import AllocationRef
from backorders.domain.lifecycle import status_after_allocation
from backorders.domain.queue import queue_order_by
from backorders.services.outbox import kind_of, sql_payload, trace_context
from backorders.services.stock import StockRow
from backorders.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ReceivedLot:
    receipt_id: str
    quantity: int


@dataclass(frozen=True)
class Restock:
    """Units that became free, and where they came from."""

    source: str
    """receipt, stock_count or release (freed by a cancellation)"""
    label: str
    """How the lines' timeline names it: "receipt R-1", "a stock count"."""
    receipt: ReceivedLot | None = None

    @property
    def receipt_id(self) -> str | None:
        return self.receipt.receipt_id if self.receipt else None


_PAYLOAD = sql_payload(AllocationRef, allocation_id="ins.id", quantity="ins.quantity",
                       source="CAST(:source AS text)", receipt_id="CAST(:receipt_id AS text)",
                       request_id="CAST(NULL AS text)")  # the row's context has it
"""The `allocated` message, as the line contract has it (also the timeline's data)."""


@dataclass
class Allocated:
    allocation_id: uuid.UUID
    line_id: uuid.UUID
    order_id: uuid.UUID
    quantity: int
    queue_position: int


_ALLOCATE = """
WITH front AS (
    -- Every waiting line wants at least one unit, so `available` units can reach no
    -- further than the first `available` lines: an index scan, however long the queue.
    SELECT l.id, l.order_id, l.waiting_quantity, l.placed_at, l.seq, l.tier_rank, l.order_value
    FROM order_lines l
    WHERE l.sku = :sku AND l.waiting_quantity > 0
    ORDER BY {order_by}
    LIMIT :available
),
queue AS (
    SELECT l.id, l.order_id, l.waiting_quantity,
           row_number() OVER w AS position,
           sum(l.waiting_quantity) OVER w AS upto
    FROM front l
    WINDOW w AS (ORDER BY {order_by} ROWS UNBOUNDED PRECEDING)
),
take AS (
    SELECT id, order_id, position,
           LEAST(waiting_quantity, :available - (upto - waiting_quantity)) AS give
    FROM queue
    WHERE upto - waiting_quantity < :available
),
upd AS (
    UPDATE order_lines l
    SET waiting_quantity = l.waiting_quantity - t.give,
        status = CASE WHEN l.waiting_quantity > t.give THEN :still_waiting ELSE :served END,
        updated_at = now()
    FROM take t
    WHERE l.id = t.id
    RETURNING l.id AS line_id, t.order_id, t.give, t.position
),
ins AS (
    INSERT INTO allocations (id, line_id, order_id, sku, quantity, source, receipt_id,
                             queue_position, status)
    SELECT gen_random_uuid(), line_id, order_id, :sku, give, :source, :receipt_id, position,
           'allocated'
    FROM upd
    RETURNING id, line_id, order_id, quantity, queue_position
),
box AS (
    INSERT INTO outbox (kind, line_id, payload, available_at, trace)
    SELECT CAST(:kind AS text), ins.line_id, {payload},
           -- Uncorrelated, so computed once (an InitPlan), not once per row.
           (SELECT CASE WHEN count(*) <= :inline_limit
                        THEN now() + make_interval(secs => :grace) ELSE now() END FROM take),
           CAST(:trace AS jsonb)
    FROM ins
    RETURNING id
),
held AS (
    -- Ship-complete orders still held: only these can be released by this allocation
    -- (usually none, so the release check does not look at 10,000 orders again).
    SELECT o.id FROM orders o
    WHERE o.ship_complete AND o.released_at IS NULL
      AND o.id IN (SELECT order_id FROM upd)
),
events AS (
    INSERT INTO line_events (line_id, kind, message, data)
    SELECT ins.line_id, 'allocated',
           ins.quantity || ' unit(s) allocated from ' || CAST(:label AS text),
           {payload} - 'request_id'  -- the message's, filled in at delivery
    FROM ins
)
SELECT ins.id, ins.line_id, ins.order_id, ins.quantity, ins.queue_position,
       -- On the first row only: on every row, 10,000 rows would carry 10,000 ids each.
       CASE WHEN row_number() OVER (ORDER BY ins.queue_position) = 1
            THEN (SELECT array_agg(id ORDER BY id) FROM box) END AS outbox_ids,
       CASE WHEN row_number() OVER (ORDER BY ins.queue_position) = 1
            THEN (SELECT array_agg(id) FROM held) END AS held_orders
FROM ins
ORDER BY ins.queue_position
"""


@dataclass
class AllocationRun:
    allocations: list[Allocated]
    held_orders: list[uuid.UUID]
    """Ship-complete orders still held that this run gave units to."""


async def allocate_to_queue(uow: UnitOfWork, stock: StockRow, restock: Restock) -> AllocationRun:
    """Give the SKU's available units to its waiting lines; `stock` is updated in
    memory for the caller to save."""
    available = stock.available
    if available <= 0 or stock.backordered <= 0:
        return AllocationRun([], [])
    settings = uow.settings
    result = await uow.conn.execute(
        sa.text(_ALLOCATE.format(order_by=queue_order_by(stock.allocation_policy),
                                 payload=_PAYLOAD)),
        {
            "sku": stock.sku,
            "available": available,
            "kind": kind_of(AllocationRef),
            "source": restock.source,
            "receipt_id": restock.receipt_id,
            "label": restock.label,
            "inline_limit": settings.outbox_inline_limit,
            "grace": settings.outbox_inline_grace_seconds,
            "trace": trace_context(),
            "still_waiting": status_after_allocation(still_waiting=True).value,
            "served": status_after_allocation(still_waiting=False).value,
        },
    )
    rows = result.all()
    allocations = [Allocated(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    total = sum(a.quantity for a in allocations)
    stock.reserved += total
    stock.backordered -= total
    if len(allocations) > settings.outbox_inline_limit:
        await uow.leave_to_relay()
    elif rows:
        uow.sent(rows[0].outbox_ids)
    return AllocationRun(allocations, list(rows[0].held_orders or []) if rows else [])
