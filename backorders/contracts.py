"""Inputs and outputs of the line workflow and its activities.

Plain dataclasses so the SDK's default converter carries them and workflow code can
import them inside the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class AllocationRef:
    """A quantity reserved for a line, as announced to its workflow."""

    allocation_id: str
    quantity: int
    # stock (reserved at intake), receipt, stock_count, release (freed by a cancellation)
    source: str
    receipt_id: str | None = None


@dataclass
class LineInput:
    line_id: str
    order_id: str
    order_number: str
    channel: str
    sku: str
    customer_id: str
    customer_tier: str
    quantity: int
    backordered_quantity: int
    intake_allocation: AllocationRef | None = None
    # Continue as new once the history has this many events (and nothing is in flight).
    history_limit: int = 10_000
    # Set only when a run continues as new: everything the line has been through so far.
    progress: LineProgress | None = None
    # Notifications (absent in lines started before they existed).
    promised_date: str | None = None
    """ISO date (the SDK's JSON converter carries datetimes, not dates)."""
    status_update_hours: float = 7 * 24
    escalate_after_hours: float = 7 * 24
    escalate_at_once: bool = False
    # The expected date when the workflow started (ISO), or no supply in sight.
    expected_date: str | None = None
    no_supply: bool = False
    # Part of a ship-complete order still waiting for other units: do not dispatch yet.
    held: bool = False


@dataclass
class CancelNotice:
    event_id: str
    reason: str
    waiting_quantity: int
    allocations: list[AllocationRef] = field(default_factory=list)


@dataclass
class StepInput:
    allocation_id: str
    line_id: str
    sku: str
    quantity: int


@dataclass
class StepResult:
    allocation_id: str
    status: str
    tracking_number: str | None = None


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    message: str


@dataclass
class AllocationView:
    allocation_id: str
    quantity: int
    source: str
    status: str
    receipt_id: str | None = None
    tracking_number: str | None = None


@dataclass
class LineProgress:
    waiting_quantity: int
    shipped_quantity: int
    cancelled_quantity: int
    allocations: list[AllocationView]
    seen_cancels: list[str]
    timeline: list[TimelineEntry]
    expected_date: str | None = None
    no_supply: bool = False


@dataclass
class LineState:
    line_id: str
    order_id: str
    order_number: str
    sku: str
    customer_id: str
    customer_tier: str
    status: str
    quantity: int
    waiting_quantity: int
    shipped_quantity: int
    cancelled_quantity: int
    allocations: list[AllocationView]
    timeline: list[TimelineEntry]
    expected_date: str | None = None
    """When the waiting units should arrive (ISO date), if any supply covers them."""
    no_supply: bool = False


@dataclass
class LineNotice:
    """Tell the line's customer (or, for staff events, the team) about an event."""

    line_id: str
    event: str
    key: str
    """Unique per line and event: the notification's idempotency key."""
    occurred_at: datetime
    detail: str | None = None
    days_waiting: int = 0
    quantity: int = 0
    """Units the event concerns (allocated, dispatched, cancelled)."""


@dataclass
class NotifyOutcome:
    notification_ids: list[int]
    status: str
    send_after: datetime | None = None
    """Set when the message waits for the customer's quiet hours to end."""


@dataclass
class DigestInput:
    customer_id: str
    send_at: datetime


@dataclass
class EtaNotice:
    """The line's expected date was recomputed (supply or queue changed)."""

    event_id: str
    expected_date: str | None
    no_supply: bool
    tell_customer: bool
    later: bool
    reason: str


@dataclass
class DelayNotice:
    """Supply for a waiting line slipped (from ops, or a purchase order moving)."""

    event_id: str
    reason: str
