"""Reminder and escalation timing (`domain/reminders.py`), without a workflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backorders.domain.reminders import Fired, Reminders

SINCE = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)


def weekly(**overrides: object) -> Reminders:
    settings: dict = {"status_update_hours": 7 * 24, "escalate_after_hours": 10 * 24,
                      "escalated": False, "promised_date": None}
    settings.update(overrides)
    return Reminders.start(SINCE, **settings)


def test_while_units_wait_the_next_status_update_or_escalation_is_due():
    reminders = weekly()
    assert reminders.next_due(waiting=True) == SINCE + timedelta(days=7)

    fired, reminders = reminders.fire(SINCE + timedelta(days=7), waiting=True)
    assert fired == Fired(days_waiting=7, status_update=SINCE + timedelta(days=7))
    assert reminders.next_due(waiting=True) == SINCE + timedelta(days=10)

    fired, reminders = reminders.fire(SINCE + timedelta(days=10), waiting=True)
    assert fired == Fired(days_waiting=10, escalation=True)
    assert reminders.next_due(waiting=True) == SINCE + timedelta(days=14)


def test_a_line_escalated_at_once_is_not_escalated_again():
    reminders = weekly(escalated=True)
    fired, _ = reminders.fire(SINCE + timedelta(days=30), waiting=True)
    assert not fired.escalation


def test_a_late_wake_up_sends_one_status_update_and_the_next_at_the_next_wake_up():
    fired, reminders = weekly().fire(SINCE + timedelta(days=15), waiting=True)
    assert fired.status_update == SINCE + timedelta(days=7) and fired.escalation
    assert reminders.next_due(waiting=True) == SINCE + timedelta(days=14)


def test_the_promise_is_checked_once_at_midnight_utc_after_the_promised_date():
    reminders = weekly(promised_date="2026-11-05")
    midnight = datetime(2026, 11, 6, tzinfo=UTC)
    assert reminders.next_due(waiting=True) == midnight
    assert reminders.next_due(waiting=False) == midnight  # whether or not units wait

    fired, reminders = reminders.fire(midnight, waiting=False)
    assert fired == Fired(days_waiting=3, promise_check=True)
    assert reminders.next_due(waiting=False) is None


def test_nothing_is_due_once_nothing_waits_and_no_promise_is_pending():
    assert weekly().next_due(waiting=False) is None
    fired, _ = weekly().fire(SINCE + timedelta(days=30), waiting=False)
    assert fired == Fired(days_waiting=30)
