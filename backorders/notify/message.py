"""The shapes every part of notification shares: events, channels, a rendered message
and what a provider answered."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Event(StrEnum):
    # To the customer, on a line's transitions.
    BACKORDERED = "backordered"
    ALLOCATED = "allocated"
    DISPATCHED = "dispatched"
    DELAYED = "delayed"
    CANCELLED = "cancelled"
    # To the customer, on durable timers.
    STATUS_UPDATE = "status_update"
    PROMISE_MISSED = "promise_missed"
    DIGEST = "digest"
    # To staff.
    STAFF_PROMISE_MISSED = "staff_promise_missed"
    ESCALATION = "escalation"
    LOW_STOCK = "low_stock"
    SUPPLY_SHORTFALL = "supply_shortfall"
    RECEIPT_PROCESSED = "receipt_processed"
    INTAKE_DEAD = "intake_dead"
    IMPENDING_SHORTAGE = "impending_shortage"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    LOG = "log"
    """No provider configured: the message is kept in the store and written to the log."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Outgoing:
    idempotency_key: str
    """One per line and event (or per digest): the provider and our store both honour it."""
    channel: Channel
    to: str
    """An email address, a phone number in E.164, or a push session/device token."""
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Delivery:
    provider_id: str | None
    """The provider's own id for the message, when it gives one."""


class DeliveryFailed(Exception):
    """A provider refused or could not be reached. `retryable` for 429, 5xx and network
    errors; `retry_after` when the provider said how long to wait."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
