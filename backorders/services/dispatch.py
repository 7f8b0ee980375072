"""Dispatch steps as conditional state transitions on the allocation ledger.

Each step moves an allocation forward only from the step before it, and answers the
current status when it has already moved (a retried activity) or was cancelled under
it. Shipping has a point of no return: `begin_dispatch` stamps the allocation before
the carrier hand-over, and from then on a cancellation leaves it alone, so a unit can
never be both cancelled and shipped, nor shipped twice.

These run for every unit shipped, so they go to the driver directly (`db.direct`) and
a transition is two round trips: BEGIN with the lock on the line and its allocations,
then one statement that writes everything, with COMMIT."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.db import Direct, direct_one, direct_transaction, execute, query
from backorders.domain.lifecycle import TERMINAL, AllocationStatus, has_reached, line_status
from backorders.domain.steps import STEPS, dispatched_message
from backorders.services import stock

S = AllocationStatus


class AllocationNotFound(Exception):
    pass


class OutOfOrder(Exception):
    pass


@dataclass
class StepOutcome:
    status: AllocationStatus
    tracking_number: str | None = None


@dataclass
class _Allocation:
    id: uuid.UUID
    status: AllocationStatus
    quantity: int
    dispatch_started_at: datetime | None
    tracking_number: str | None


@dataclass
class _Line:
    id: uuid.UUID
    waiting: int
    shipped: int
    status: str
    allocations: dict[uuid.UUID, _Allocation]

    def status_with(self, allocation_id: uuid.UUID, new: AllocationStatus, shipped: int = 0) -> str:
        steps = [new if a.id == allocation_id else a.status for a in self.allocations.values()]
        return line_status(waiting=self.waiting, shipped=self.shipped + shipped,
                           in_progress=[s for s in steps if s not in TERMINAL]).value


_LOCK = sa.text(
    """
    SELECT l.waiting_quantity, l.shipped_quantity, l.status AS line_status,
           a.id, a.status, a.quantity, a.dispatch_started_at, a.tracking_number
    FROM order_lines l JOIN allocations a ON a.line_id = l.id
    WHERE l.id = :id
    ORDER BY a.id
    FOR UPDATE
    """
)


async def _lock(conn: Direct, line_id: uuid.UUID, allocation_id: uuid.UUID,
                ) -> tuple[_Line, _Allocation]:
    """Lock the line, then its allocations (the global order: stock, line, allocation),
    in one statement: rows are locked as they come out of the sort, the line with the
    first of them."""
    rows = await query(conn, _LOCK, {"id": line_id})
    allocations = {r.id: _Allocation(r.id, S(r.status), r.quantity, r.dispatch_started_at,
                                     r.tracking_number) for r in rows}
    if allocation_id not in allocations:
        raise AllocationNotFound(f"no allocation {allocation_id} on line {line_id}")
    line = rows[0]
    snapshot = _Line(line_id, line.waiting_quantity, line.shipped_quantity, line.line_status,
                     allocations)
    return snapshot, allocations[allocation_id]


_ADVANCE = sa.text(
    """
    WITH a AS (
        UPDATE allocations SET status = :status, updated_at = now() WHERE id = :id
    ), l AS (
        UPDATE order_lines SET status = :line_status, updated_at = now()
        WHERE id = :line_id AND status <> :line_status
    )
    INSERT INTO line_events (line_id, kind, message, data)
    VALUES (:line_id, :status, :message, CAST(:data AS jsonb))
    """
)


_CURRENT = sa.text("SELECT status, tracking_number FROM allocations WHERE id = :id")


async def current(engine: AsyncEngine, allocation_id: uuid.UUID) -> StepOutcome:
    row = await direct_one(engine, _CURRENT, {"id": allocation_id})
    if row is None:
        raise AllocationNotFound(f"no allocation {allocation_id}")
    return StepOutcome(S(row.status), row.tracking_number)


async def advance(
    engine: AsyncEngine, allocation_id: uuid.UUID, line_id: uuid.UUID, target: AllocationStatus
) -> StepOutcome:
    async def work(conn: Direct) -> StepOutcome:
        line, a = await _lock(conn, line_id, allocation_id)
        if a.status is S.CANCELLED or has_reached(a.status, target):
            return StepOutcome(a.status, a.tracking_number)
        step = STEPS[target]
        if a.status is not step.comes_after:
            raise OutOfOrder(f"allocation {allocation_id} is {a.status}, cannot become {target}")
        await execute(conn, _ADVANCE, {
            "id": allocation_id, "status": target.value, "line_id": line_id,
            "line_status": line.status_with(allocation_id, target),
            "message": step.ledger_message(a.quantity),
            "data": json.dumps({"allocation_id": str(a.id), "quantity": a.quantity}),
        })
        return StepOutcome(target)

    return await direct_transaction(engine, work)


_BEGIN_DISPATCH = sa.text(
    """
    UPDATE allocations SET dispatch_started_at = coalesce(dispatch_started_at, now())
    WHERE id = :id AND status = 'awaiting_shipment'
    RETURNING status
    """
)


async def begin_dispatch(engine: AsyncEngine, allocation_id: uuid.UUID) -> StepOutcome:
    """Pass the point of no return before the carrier hand-over. One statement: the row
    lock it takes serialises it against a cancellation of the same allocation."""
    if await direct_one(engine, _BEGIN_DISPATCH, {"id": allocation_id}) is not None:
        return StepOutcome(S.AWAITING_SHIPMENT)
    outcome = await current(engine, allocation_id)
    if outcome.status not in (S.CANCELLED, S.DISPATCHED):
        raise OutOfOrder(f"allocation {allocation_id} is {outcome.status}, cannot be dispatched")
    return outcome


_COMPLETE = sa.text(
    """
    WITH a AS (
        UPDATE allocations SET status = 'dispatched', tracking_number = :tracking,
               dispatched_at = now(), updated_at = now()
        WHERE id = :id
    ), s AS (
        UPDATE stock SET on_hand = on_hand - :q, reserved = reserved - :q, updated_at = now()
        WHERE sku = :sku
        RETURNING on_hand
    ), m AS (
        INSERT INTO inventory_movements (sku, delta, on_hand_after, reason, reference)
        SELECT :sku, -:q, s.on_hand, 'dispatch', CAST(:id AS text) FROM s
    ), l AS (
        UPDATE order_lines SET shipped_quantity = shipped_quantity + :q, status = :line_status,
               updated_at = now()
        WHERE id = :line_id
    )
    INSERT INTO line_events (line_id, kind, message, data)
    VALUES (:line_id, 'dispatched', :message, CAST(:data AS jsonb))
    """
)


async def complete_dispatch(
    engine: AsyncEngine, allocation_id: uuid.UUID, line_id: uuid.UUID, sku: str,
    tracking_number: str,
) -> StepOutcome:
    """Record the hand-over: the units leave on-hand stock and count as shipped."""

    async def work(conn: Direct) -> StepOutcome:
        await execute(conn, stock.LOCK_ONE, {"sku": sku})  # sent with BEGIN and the next
        line, a = await _lock(conn, line_id, allocation_id)
        if a.status is S.DISPATCHED:
            return StepOutcome(a.status, a.tracking_number)
        if a.status is not S.AWAITING_SHIPMENT or a.dispatch_started_at is None:
            raise OutOfOrder(f"allocation {allocation_id} is {a.status}, not being dispatched")
        await execute(conn, _COMPLETE, {
            "id": allocation_id, "q": a.quantity, "sku": sku, "tracking": tracking_number,
            "line_id": line_id,
            "line_status": line.status_with(allocation_id, S.DISPATCHED, shipped=a.quantity),
            "message": dispatched_message(a.quantity, tracking_number),
            "data": json.dumps({"allocation_id": str(a.id), "quantity": a.quantity,
                                "tracking_number": tracking_number}),
        })
        return StepOutcome(S.DISPATCHED, tracking_number)

    return await direct_transaction(engine, work)
