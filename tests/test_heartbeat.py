"""Message activities heartbeat while they send, so an attempt whose result was lost (a
dead worker, a Temporal server restarting as it reported) is retried within the
heartbeat timeout, not after the five-minute start-to-close timeout."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities import heartbeat
from activities.notify import NotifyActivities
from backorders.contracts.activities import LineNotice, NotifyOutcome
from workflows.line import NOTIFY_HEARTBEAT_TIMEOUT, NOTIFY_TIMEOUT


class _SlowNotifier:
    """Sends take a while (a provider retrying, say)."""

    engine: Any = None

    async def notify_line(self, notice: LineNotice, holder: Any) -> NotifyOutcome:
        await asyncio.sleep(0.3)
        return NotifyOutcome([1], "sent")

    async def deliver(self, notification_id: int, holder: Any) -> None:
        await asyncio.sleep(0.3)

    async def outcome(self, ids: list[int]) -> NotifyOutcome:
        return NotifyOutcome(ids, "sent")


async def test_message_activities_heartbeat_while_they_send(monkeypatch):
    monkeypatch.setattr(heartbeat, "EVERY_SECONDS", 0.05)
    activities = NotifyActivities(_SlowNotifier(), None, "q")  # type: ignore[arg-type]
    notice = LineNotice("line-1", "allocated", "line-1:allocated:a", datetime.now(UTC), None,
                        0, 1)
    for method, arg in ((activities.notify_line, notice), (activities.deliver, [1])):
        env = ActivityEnvironment()
        beats: list[Any] = []

        def record(*details: Any, beats: list[Any] = beats) -> None:
            beats.append(details)

        env.on_heartbeat = record
        outcome = await env.run(method, arg)
        assert outcome.status == "sent"
        assert len(beats) >= 3, beats


def test_a_lost_message_attempt_is_retried_well_before_its_start_to_close_timeout():
    assert heartbeat.EVERY_SECONDS * 3 <= NOTIFY_HEARTBEAT_TIMEOUT.total_seconds()
    assert NOTIFY_HEARTBEAT_TIMEOUT * 5 <= NOTIFY_TIMEOUT
