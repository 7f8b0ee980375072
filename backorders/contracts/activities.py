"""Inputs and outputs of the activities the workflows call (dispatch steps, messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class StepInput:
    allocation_id: str
    line_id: str
    sku: str
    quantity: int
    # Correlation ids for the activity's logs (absent in steps scheduled before them).
    order_id: str | None = None
    receipt_id: str | None = None
    request_id: str | None = None


@dataclass
class StepResult:
    allocation_id: str
    status: str
    tracking_number: str | None = None


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
    # Correlation ids for the activity's logs: the order, and the request that caused the
    # event (none for a timer's reminder).
    order_id: str | None = None
    request_id: str | None = None


@dataclass
class NotifyOutcome:
    notification_ids: list[int]
    status: str
    send_after: datetime | None = None
    """Set when the message waits for the customer's quiet hours to end."""
