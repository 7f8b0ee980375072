"""The warehouse steps an allocation goes through, and how each one is worded.

One table for both sides: the ledger (`services/dispatch.py`) checks a step against it
before moving an allocation on and writes its line event from it, and the line workflow
words its timeline from it once the step's activity has completed. Pure code, imported
from workflows."""

from __future__ import annotations

from dataclasses import dataclass

from backorders.domain.lifecycle import IN_PROGRESS, AllocationStatus

S = AllocationStatus


@dataclass(frozen=True)
class Step:
    status: AllocationStatus
    """The status an allocation has while it is in this step."""
    ledger: str
    """What the ledger's line event says as the allocation enters the step."""
    done: str
    """What the line's timeline says once the step's activity has completed."""

    @property
    def comes_after(self) -> AllocationStatus:
        """The one status an allocation may enter this step from: the step before it."""
        return IN_PROGRESS[IN_PROGRESS.index(self.status) - 1]

    def ledger_message(self, quantity: int) -> str:
        return _units(quantity, self.ledger)

    def done_message(self, quantity: int) -> str:
        return _units(quantity, self.done)


STEPS: dict[AllocationStatus, Step] = {step.status: step for step in (
    Step(S.PICKING, ledger="being picked", done="picked"),
    Step(S.PACKED, ledger="packed", done="packed"),
    Step(S.AWAITING_SHIPMENT, ledger="labelled, awaiting carrier collection",
         done="labelled, awaiting carrier collection"),
)}
"""The steps between allocated and dispatched, in the order they happen."""


def dispatched_message(quantity: int, tracking_number: str | None) -> str:
    """The hand-over to the carrier, as the ledger and the line's timeline both say it."""
    return _units(quantity, f"dispatched, tracking {tracking_number}")


def _units(quantity: int, what: str) -> str:
    return f"{quantity} unit(s) {what}"
