"""The one place that says what status a line and an order are in.

Used by the database layer (to store the status it filters on) and by the line
workflow (for its query and search attribute), so both always agree. Pure code:
imported from workflows, so no I/O and no non-deterministic calls here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class AllocationStatus(StrEnum):
    """Where a quantity reserved for a line stands on its way to the customer."""

    ALLOCATED = "allocated"
    PICKING = "picking"
    PACKED = "packed"
    AWAITING_SHIPMENT = "awaiting_shipment"
    DISPATCHED = "dispatched"
    CANCELLED = "cancelled"


class LineStatus(StrEnum):
    BACKORDERED = "backordered"
    ALLOCATED = "allocated"
    PICKING = "picking"
    PACKED = "packed"
    AWAITING_SHIPMENT = "awaiting_shipment"
    DISPATCHED = "dispatched"
    CANCELLED = "cancelled"


class OrderStatus(StrEnum):
    BACKORDERED = "backordered"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# Dispatch steps in the order they happen; the rank says how far an allocation has come.
IN_PROGRESS: tuple[AllocationStatus, ...] = (
    AllocationStatus.ALLOCATED,
    AllocationStatus.PICKING,
    AllocationStatus.PACKED,
    AllocationStatus.AWAITING_SHIPMENT,
)
TERMINAL: frozenset[AllocationStatus] = frozenset(
    {AllocationStatus.DISPATCHED, AllocationStatus.CANCELLED}
)
_RANK = {status: rank for rank, status in enumerate((*IN_PROGRESS, AllocationStatus.DISPATCHED))}

# Once the carrier hand-over has begun, a quantity can no longer be cancelled.
CANCELLABLE: frozenset[AllocationStatus] = frozenset(IN_PROGRESS)


def has_reached(current: AllocationStatus, target: AllocationStatus) -> bool:
    """True when `current` is `target` or a later dispatch step (cancelled reaches nothing)."""
    if current is AllocationStatus.CANCELLED or target is AllocationStatus.CANCELLED:
        return current is target
    return _RANK[current] >= _RANK[target]


def line_status(
    *,
    waiting: int,
    shipped: int,
    in_progress: Iterable[AllocationStatus | str],
) -> LineStatus:
    """A line is backordered while any of it waits; otherwise it is as far as its slowest
    in-flight quantity; once nothing is in flight it is dispatched if anything shipped."""
    if waiting > 0:
        return LineStatus.BACKORDERED
    steps = [AllocationStatus(s) for s in in_progress]
    if steps:
        return LineStatus(min(steps, key=_RANK.__getitem__).value)
    if shipped > 0:
        return LineStatus.DISPATCHED
    return LineStatus.CANCELLED


def status_after_allocation(*, still_waiting: bool) -> LineStatus:
    """A new allocation is the least advanced step there is, so right after one the line
    is backordered if some of it still waits and allocated otherwise, whatever else is in
    flight. Lets allocation set the status in the same statement that takes the units."""
    return line_status(waiting=int(still_waiting), shipped=0,
                       in_progress=[] if still_waiting else [AllocationStatus.ALLOCATED])


# The warehouse steps an allocated line goes through; ops see them as one search status.
_IN_WAREHOUSE = frozenset({LineStatus.PICKING, LineStatus.PACKED, LineStatus.AWAITING_SHIPMENT})


def search_status(status: LineStatus) -> LineStatus:
    """What the BackorderStatus search attribute shows ops: waiting, allocated (and on
    its way through the warehouse), dispatched or cancelled. Each change rewrites the
    workflow's visibility record, which cost more server CPU than the warehouse step it
    would report; the step itself is in the line's query and the API."""
    return LineStatus.ALLOCATED if status in _IN_WAREHOUSE else status


def order_status(line_statuses: Iterable[LineStatus | str]) -> OrderStatus:
    statuses = [LineStatus(s) for s in line_statuses]
    if all(s is LineStatus.CANCELLED for s in statuses):
        return OrderStatus.CANCELLED
    if any(s is LineStatus.BACKORDERED for s in statuses):
        return OrderStatus.BACKORDERED
    if all(s in (LineStatus.DISPATCHED, LineStatus.CANCELLED) for s in statuses):
        return OrderStatus.COMPLETED
    return OrderStatus.PROCESSING
