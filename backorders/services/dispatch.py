"""Dispatch steps as conditional state transitions on the allocation ledger.

Each step moves an allocation forward only from the step before it, and answers the
current status when it has already moved (a retried activity) or was cancelled under
it. Shipping has a point of no return: `begin_dispatch` stamps the allocation before
the carrier hand-over, and from then on a cancellation leaves it alone, so a unit can
never be both cancelled and shipped, nor shipped twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import transaction
from backorders.domain.lifecycle import AllocationStatus, has_reached
from backorders.services import lines, stock

S = AllocationStatus

_PREVIOUS = {S.PICKING: S.ALLOCATED, S.PACKED: S.PICKING, S.AWAITING_SHIPMENT: S.PACKED}
_MESSAGES = {
    S.PICKING: "{q} unit(s) being picked",
    S.PACKED: "{q} unit(s) packed",
    S.AWAITING_SHIPMENT: "{q} unit(s) labelled, awaiting carrier collection",
}


class AllocationNotFound(Exception):
    pass


class OutOfOrder(Exception):
    pass


@dataclass
class Locked:
    id: uuid.UUID
    line_id: uuid.UUID
    sku: str
    quantity: int
    status: AllocationStatus
    dispatch_started_at: object
    tracking_number: str | None


async def _lock(conn: AsyncConnection, allocation_id: uuid.UUID, *, with_stock: bool) -> Locked:
    """Lock in the global order: stock (if needed), then the line, then the allocation."""
    head = (
        await conn.execute(
            sa.text("SELECT line_id, sku FROM allocations WHERE id = :id"), {"id": allocation_id}
        )
    ).one_or_none()
    if head is None:
        raise AllocationNotFound(f"no allocation {allocation_id}")
    if with_stock:
        await stock.lock(conn, [head.sku])
    await conn.execute(
        sa.text("SELECT 1 FROM order_lines WHERE id = :id FOR UPDATE"), {"id": head.line_id}
    )
    row = (
        await conn.execute(
            sa.text(
                """
                SELECT id, line_id, sku, quantity, status, dispatch_started_at, tracking_number
                FROM allocations WHERE id = :id FOR UPDATE
                """
            ),
            {"id": allocation_id},
        )
    ).one()
    return Locked(row.id, row.line_id, row.sku, row.quantity, S(row.status),
                  row.dispatch_started_at, row.tracking_number)


@dataclass
class StepOutcome:
    status: AllocationStatus
    tracking_number: str | None = None


async def current(engine: AsyncEngine, allocation_id: uuid.UUID) -> StepOutcome:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT status, tracking_number FROM allocations WHERE id = :id"),
                {"id": allocation_id},
            )
        ).one_or_none()
    if row is None:
        raise AllocationNotFound(f"no allocation {allocation_id}")
    return StepOutcome(S(row.status), row.tracking_number)


async def advance(
    engine: AsyncEngine, allocation_id: uuid.UUID, target: AllocationStatus
) -> StepOutcome:
    async def work(conn: AsyncConnection) -> StepOutcome:
        a = await _lock(conn, allocation_id, with_stock=False)
        if a.status is S.CANCELLED or has_reached(a.status, target):
            return StepOutcome(a.status, a.tracking_number)
        if a.status is not _PREVIOUS[target]:
            raise OutOfOrder(f"allocation {allocation_id} is {a.status}, cannot become {target}")
        await conn.execute(
            sa.text("UPDATE allocations SET status = :s, updated_at = now() WHERE id = :id"),
            {"s": target.value, "id": allocation_id},
        )
        await lines.refresh_status(conn, [a.line_id])
        await lines.record(conn, [lines.Event(
            a.line_id, target.value, _MESSAGES[target].format(q=a.quantity),
            {"allocation_id": str(a.id), "quantity": a.quantity},
        )])
        return StepOutcome(target)

    return await transaction(engine, work)


async def begin_dispatch(engine: AsyncEngine, allocation_id: uuid.UUID) -> StepOutcome:
    """Pass the point of no return before the carrier hand-over."""

    async def work(conn: AsyncConnection) -> StepOutcome:
        a = await _lock(conn, allocation_id, with_stock=False)
        if a.status in (S.CANCELLED, S.DISPATCHED):
            return StepOutcome(a.status, a.tracking_number)
        if a.status is not S.AWAITING_SHIPMENT:
            raise OutOfOrder(f"allocation {allocation_id} is {a.status}, cannot be dispatched")
        if a.dispatch_started_at is None:
            await conn.execute(
                sa.text("UPDATE allocations SET dispatch_started_at = now() WHERE id = :id"),
                {"id": allocation_id},
            )
        return StepOutcome(a.status)

    return await transaction(engine, work)


async def complete_dispatch(
    engine: AsyncEngine, allocation_id: uuid.UUID, tracking_number: str
) -> StepOutcome:
    """Record the hand-over: the units leave on-hand stock and count as shipped."""

    async def work(conn: AsyncConnection) -> StepOutcome:
        a = await _lock(conn, allocation_id, with_stock=True)
        if a.status is S.DISPATCHED:
            return StepOutcome(a.status, a.tracking_number)
        if a.status is not S.AWAITING_SHIPMENT or a.dispatch_started_at is None:
            raise OutOfOrder(f"allocation {allocation_id} is {a.status}, not being dispatched")
        await conn.execute(
            sa.text(
                """
                UPDATE allocations SET status = 'dispatched', tracking_number = :t,
                       dispatched_at = now(), updated_at = now()
                WHERE id = :id
                """
            ),
            {"id": allocation_id, "t": tracking_number},
        )
        row = (await stock.lock(conn, [a.sku]))[a.sku]
        row.on_hand -= a.quantity
        row.reserved -= a.quantity
        await stock.save(conn, row)
        await stock.record_movement(conn, row, -a.quantity, "dispatch", str(a.id))
        await conn.execute(
            sa.text(
                """
                UPDATE order_lines SET shipped_quantity = shipped_quantity + :q, updated_at = now()
                WHERE id = :id
                """
            ),
            {"id": a.line_id, "q": a.quantity},
        )
        await lines.refresh_status(conn, [a.line_id])
        await lines.record(conn, [lines.Event(
            a.line_id, "dispatched", f"{a.quantity} unit(s) dispatched, tracking {tracking_number}",
            {"allocation_id": str(a.id), "quantity": a.quantity, "tracking_number": tracking_number},
        )])
        return StepOutcome(S.DISPATCHED, tracking_number)

    return await transaction(engine, work)
