"""When a waiting line's customer and staff hear from us without anything happening.

While units wait: a status update every `status_update_hours` after the wait began, and
one escalation once it has lasted `escalate_after_hours` (none for a line escalated at
once, as high-tier customers' are). Once, whether or not anything still waits: at
midnight UTC after the promised date, a check that everything promised has shipped.

The line workflow keeps one `Reminders` per run, sleeps until `next_due` and, when it
wakes, asks `fire` what is due. Pure code, imported from workflows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class Fired:
    """What falls due at one wake-up, in the order it is sent."""

    days_waiting: int
    status_update: datetime | None = None
    """When the status update that fell due was scheduled (its time keys the message)."""
    escalation: bool = False
    promise_check: bool = False


@dataclass(frozen=True)
class Reminders:
    since: datetime
    every: timedelta
    escalate_at: datetime
    promise_at: datetime | None
    # What has been sent so far: the next status update, the escalation, the check.
    next_update: datetime
    escalated: bool
    promise_checked: bool = False

    @classmethod
    def start(cls, since: datetime, *, status_update_hours: float, escalate_after_hours: float,
              escalated: bool, promised_date: str | None) -> Reminders:
        """`escalated`: the line was escalated as it started. `promised_date`: ISO date."""
        every = timedelta(hours=status_update_hours)
        promise_at = None
        if promised_date is not None:
            day_after = date.fromisoformat(promised_date) + timedelta(days=1)
            promise_at = datetime.combine(day_after, time(0), tzinfo=UTC)
        return cls(since=since, every=every,
                   escalate_at=since + timedelta(hours=escalate_after_hours),
                   promise_at=promise_at, next_update=since + every, escalated=escalated)

    def next_due(self, *, waiting: bool) -> datetime | None:
        """When something next falls due; None when nothing ever will."""
        due = []
        if waiting:
            due.append(self.next_update)
            if not self.escalated:
                due.append(self.escalate_at)
        if self._promise_check_at is not None:
            due.append(self._promise_check_at)
        return min(due, default=None)

    def fire(self, now: datetime, *, waiting: bool) -> tuple[Fired, Reminders]:
        """What is due at `now`, and the reminders once it is sent. One status update at
        a time: a late wake-up sends the next one at its next wake-up."""
        update = waiting and now >= self.next_update
        escalate = waiting and not self.escalated and now >= self.escalate_at
        check = self._promise_check_at is not None and now >= self._promise_check_at
        fired = Fired(days_waiting=(now - self.since).days,
                      status_update=self.next_update if update else None,
                      escalation=escalate, promise_check=check)
        return fired, replace(
            self,
            next_update=self.next_update + self.every if update else self.next_update,
            escalated=self.escalated or escalate,
            promise_checked=self.promise_checked or check,
        )

    @property
    def _promise_check_at(self) -> datetime | None:
        return None if self.promise_checked else self.promise_at
