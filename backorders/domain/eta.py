"""When a waiting line's expected date is worth telling its customer about: the one
place this rule lives. Pure code: the ledger computes the dates, this judges the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

TELL_CUSTOMER_AFTER = timedelta(days=1)
"""A date that moves by more than this is worth a message."""


@dataclass(frozen=True)
class EtaChange:
    line_id: uuid.UUID
    before: date | None
    after: date | None
    no_supply_before: bool
    no_supply: bool
    # Honest dates (`domain.delays`): what the supplier's history makes of the date.
    # Telling the customer is judged on the expected date alone; these ride along.
    likely_before: date | None = None
    likely_after: date | None = None
    latest_before: date | None = None
    latest_after: date | None = None

    @property
    def expected_moved(self) -> bool:
        """The expected date (or no supply) changed; False when only the likely or latest
        date did (the supplier's history moved, not the purchase order or the queue)."""
        return self.before != self.after or self.no_supply_before != self.no_supply

    @property
    def first(self) -> bool:
        """The line's first estimate: its backorder message carries it."""
        return self.before is None and not self.no_supply_before

    @property
    def worth_telling(self) -> bool:
        if self.first:
            return False
        if self.before is None or self.after is None:
            return True  # a date appeared or disappeared
        return abs(self.after - self.before) > TELL_CUSTOMER_AFTER

    @property
    def later(self) -> bool:
        if self.after is None:
            return True
        return self.before is not None and self.after > self.before

    def reason(self) -> str:
        if not self.expected_moved and self.likely_after is not None:
            said = f"likely by {self.likely_after.isoformat()}"
            if self.latest_after is not None and self.latest_after != self.likely_after:
                said += f", at the latest {self.latest_after.isoformat()}"
            return f"{said} (our supplier's delivery record)"
        if self.after is None:
            return "no incoming supply covers these units yet; we are sourcing them"
        if self.before is None:
            return f"now expected by {self.after.isoformat()}"
        return f"expected date moved from {self.before.isoformat()} to {self.after.isoformat()}"
