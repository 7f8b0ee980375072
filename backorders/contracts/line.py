"""The line workflow's public face: what both sides of the hand-off agree on.

The workflow type name, its id scheme, its signal and query names, and the dataclasses
they carry live here and nowhere else. The services write outbox messages as these
dataclasses, the relay starts and signals workflows by these names, and the workflow
implements them, so neither side rebuilds the other's strings. Pure data: imported by
workflow code inside the sandbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from backorders import search_attributes as keys
from backorders.domain.lifecycle import AllocationStatus, line_status

WORKFLOW_TYPE = "BackorderLine"
QUERY_STATE = "state"


def workflow_id(line_id: uuid.UUID | str) -> str:
    """One workflow per order line, found again by the line's id."""
    return f"line-{line_id}"


class Signal(StrEnum):
    ALLOCATED = "allocated"
    CANCEL = "cancel"
    DELAYED = "delayed"
    EXPECTED = "expected"
    RELEASE = "release"


@dataclass
class AllocationRef:
    """A quantity reserved for a line, as announced to its workflow."""

    allocation_id: str
    quantity: int
    # stock (reserved at intake), receipt, stock_count, release (freed by a cancellation)
    source: str
    receipt_id: str | None = None
    request_id: str | None = None
    """The API request whose transaction wrote the message (set at delivery): the line's
    activities log under it."""


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
    # Honest dates when the workflow started (ISO; absent in lines started before them).
    likely_date: str | None = None
    latest_date: str | None = None
    request_id: str | None = None
    """The request that placed the order (set at delivery)."""


@dataclass
class CancelNotice:
    event_id: str
    reason: str
    waiting_quantity: int
    allocations: list[AllocationRef] = field(default_factory=list)
    request_id: str | None = None


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
    """Everything the line has been through: the workflow's whole durable state, which
    it carries as is into a continued run. Recorded histories and running lines carry
    this JSON shape, so fields keep their names and new ones come last, with defaults."""

    waiting_quantity: int
    shipped_quantity: int
    cancelled_quantity: int
    allocations: list[AllocationView]
    seen_cancels: list[str]
    """Every event id applied (cancellations, delays, expected dates), sorted."""
    timeline: list[TimelineEntry]
    expected_date: str | None = None
    no_supply: bool = False
    held: bool = False
    """Mirrors `LineInput.held`, which a run starts from (earlier runs carried it there
    alone)."""
    likely_date: str | None = None
    latest_date: str | None = None


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
    likely_date: str | None = None
    """The covering purchase order's promise shifted by its supplier's usual delay (the
    `ETA_LIKELY_QUANTILE` of its past delays), never before `expected_date`; equal to it
    when the supplier has no history."""
    latest_date: str | None = None
    """The same with `ETA_LATEST_QUANTILE`: the date the line should arrive by."""


@dataclass
class EtaNotice:
    """The line's expected date was recomputed (supply or queue changed)."""

    event_id: str
    expected_date: str | None
    no_supply: bool
    tell_customer: bool
    later: bool
    reason: str
    # Honest dates (ISO), absent in notices written before them.
    likely_date: str | None = None
    latest_date: str | None = None
    request_id: str | None = None


@dataclass
class DelayNotice:
    """Ops recorded that supply for a waiting line slipped (`POST /backorders/{id}/delay`);
    a purchase order moving re-dates the line with an `EtaNotice` instead."""

    event_id: str
    reason: str
    request_id: str | None = None


@dataclass
class StartLine:
    """Start the line's workflow (its input is read from the ledger at delivery)."""


@dataclass
class ReleaseHold:
    """The whole ship-complete order is in hand: the line may ship what it holds."""


LineMessage = StartLine | AllocationRef | CancelNotice | DelayNotice | EtaNotice | ReleaseHold
"""What the services hand to a line through the outbox."""


@dataclass(frozen=True)
class MessageKind:
    kind: str
    """Stored in `outbox.kind`."""
    payload: type
    signal: Signal | None
    """None for a start: the message is the workflow's input, not a signal."""


MESSAGE_KINDS = (
    MessageKind("line.start", StartLine, None),
    MessageKind("line.allocated", AllocationRef, Signal.ALLOCATED),
    MessageKind("line.cancelled", CancelNotice, Signal.CANCEL),
    MessageKind("line.delayed", DelayNotice, Signal.DELAYED),
    MessageKind("line.expected", EtaNotice, Signal.EXPECTED),
    MessageKind("line.release", ReleaseHold, Signal.RELEASE),
)
BY_KIND = {m.kind: m for m in MESSAGE_KINDS}
BY_PAYLOAD: dict[type, MessageKind] = {m.payload: m for m in MESSAGE_KINDS}


def start_search_attributes(line: LineInput) -> TypedSearchAttributes:
    """What ops filter a line by in the Temporal UI, set when it starts; the workflow
    then keeps BackorderStatus current."""
    in_progress = [AllocationStatus.ALLOCATED] if line.intake_allocation else []
    status = line_status(waiting=line.backordered_quantity, shipped=0, in_progress=in_progress)
    return TypedSearchAttributes(
        [
            SearchAttributePair(keys.SKU, line.sku),
            SearchAttributePair(keys.ORDER_NUMBER, line.order_number),
            SearchAttributePair(keys.CUSTOMER_ID, line.customer_id),
            SearchAttributePair(keys.CUSTOMER_TIER, line.customer_tier),
            SearchAttributePair(keys.BACKORDER_STATUS, status.value),
        ]
    )
