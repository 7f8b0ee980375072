"""The line workflow alone, on the time-skipping server, with its activities mocked under
their real names (as temporalio/samples-python tests workflows): no database, no
warehouse, no relay. Each test drives one line by the contract's signals and watches
what it asks its activities to do; days of waiting pass in milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.dispatch import DispatchActivities
from activities.notify import NotifyActivities
from backorders.contracts.activities import LineNotice, NotifyOutcome, StepInput, StepResult
from backorders.contracts.line import (
    QUERY_STATE,
    WORKFLOW_TYPE,
    AllocationRef,
    AllocationView,
    CancelNotice,
    LineInput,
    LineProgress,
    LineState,
    Signal,
    start_search_attributes,
    workflow_id,
)
from backorders.settings import Settings
from tests.support import eventually
from workflows.line import LineWorkflow

DISPATCH = ["pick", "pack", "label", "ship"]


class MockedActivities:
    """Stand-ins for DispatchActivities and NotifyActivities: every step moves the
    allocation on as the ledger would, every message is sent; all are recorded."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        """(activity, allocation id), in the order the workflow ran them."""
        self.notices: list[LineNotice] = []

    def _step(self, name: str, step: StepInput, status: str,
              tracking_number: str | None = None) -> StepResult:
        self.steps.append((name, step.allocation_id))
        return StepResult(step.allocation_id, status, tracking_number)

    @activity.defn(name="pick")
    async def pick(self, step: StepInput) -> StepResult:
        return self._step("pick", step, "picking")

    @activity.defn(name="pack")
    async def pack(self, step: StepInput) -> StepResult:
        return self._step("pack", step, "packed")

    @activity.defn(name="label")
    async def label(self, step: StepInput) -> StepResult:
        return self._step("label", step, "awaiting_shipment")

    @activity.defn(name="ship")
    async def ship(self, step: StepInput) -> StepResult:
        return self._step("ship", step, "dispatched", f"TRACK-{step.allocation_id}")

    @activity.defn(name="release")
    async def release(self, step: StepInput) -> None:
        self.steps.append(("release", step.allocation_id))

    @activity.defn(name="notify_line")
    async def notify_line(self, notice: LineNotice) -> NotifyOutcome:
        self.notices.append(notice)
        return NotifyOutcome([len(self.notices)], "sent")

    @activity.defn(name="deliver_notifications")
    async def deliver(self, ids: list[int]) -> NotifyOutcome:
        return NotifyOutcome(ids, "sent")

    def all(self) -> list[Any]:
        return [self.pick, self.pack, self.label, self.ship, self.release,
                self.notify_line, self.deliver]

    def events(self) -> list[str]:
        """The events messages were sent for, sorted: messages go out side by side."""
        return sorted(n.event for n in self.notices)


@dataclass
class Lines:
    env: WorkflowEnvironment
    task_queue: str
    mocked: MockedActivities

    async def start(self, **line: Any) -> WorkflowHandle[Any, LineState]:
        """Start a line as the relay does: by the contract's type name, id scheme and
        search attributes. A backordered line of 2 units unless told otherwise."""
        fields: dict[str, Any] = {
            "line_id": str(uuid.uuid4()), "order_id": "o-1", "order_number": "SO-1",
            "channel": "web", "sku": "SKU-1", "customer_id": "c-1",
            "customer_tier": "standard", "quantity": 2, "backordered_quantity": 2,
        }
        fields.update(line)
        start = LineInput(**fields)
        return await self.env.client.start_workflow(
            WORKFLOW_TYPE, start, id=workflow_id(start.line_id), task_queue=self.task_queue,
            search_attributes=start_search_attributes(start), result_type=LineState)


@pytest.fixture
async def lines(temporal_env: WorkflowEnvironment) -> AsyncIterator[Lines]:
    mocked = MockedActivities()
    task_queue = f"mocked-{uuid.uuid4().hex[:10]}"
    async with Worker(temporal_env.client, task_queue=task_queue, workflows=[LineWorkflow],
                      activities=mocked.all()):
        yield Lines(temporal_env, task_queue, mocked)


async def state(handle: WorkflowHandle[Any, LineState]) -> LineState:
    return await handle.query(QUERY_STATE, result_type=LineState)


async def scheduled_activities(handle: WorkflowHandle[Any, LineState]) -> list[str]:
    history = await handle.fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]


async def notices(lines: Lines, count: int, what: str) -> list[LineNotice]:
    """The messages sent so far, once there are `count` of them."""
    async def sent() -> list[LineNotice]:
        return list(lines.mocked.notices)

    return await eventually(sent, lambda n: len(n) == count, what=what)


def test_the_mocks_stand_in_for_every_activity_the_line_calls_under_its_real_name():
    def names(*methods: Any) -> set[str]:
        return {activity._Definition.must_from_callable(m).name for m in methods}

    real = names(DispatchActivities.pick, DispatchActivities.pack, DispatchActivities.label,
                 DispatchActivities.ship, DispatchActivities.release,
                 NotifyActivities.notify_line, NotifyActivities.deliver)
    assert names(*MockedActivities().all()) == real


async def test_a_backordered_line_waits_for_stock_without_dispatching(lines):
    handle = await lines.start()
    await lines.env.sleep(timedelta(days=3))

    waiting = await state(handle)
    assert (waiting.status, waiting.waiting_quantity, waiting.shipped_quantity) == (
        "backordered", 2, 0)
    assert lines.mocked.steps == []
    assert lines.mocked.events() == ["backordered"]


async def test_an_allocation_is_picked_packed_labelled_and_shipped_in_order_and_closes_the_line(
    lines,
):
    handle = await lines.start()
    await handle.signal(Signal.ALLOCATED, AllocationRef("a1", 2, "receipt", "R-1"))
    result = await handle.result()

    assert lines.mocked.steps == [(step, "a1") for step in DISPATCH]
    assert (result.status, result.shipped_quantity, result.waiting_quantity) == (
        "dispatched", 2, 0)
    assert result.allocations == [
        AllocationView("a1", 2, "receipt", "dispatched", "R-1", "TRACK-a1")]
    timeline = [(e.kind, e.message) for e in result.timeline if e.kind != "notification"]
    assert timeline == [
        ("backordered", "2 unit(s) waiting for stock"),
        ("allocated", "2 unit(s) allocated from receipt R-1"),
        ("picking", "2 unit(s) picked"),
        ("packed", "2 unit(s) packed"),
        ("awaiting_shipment", "2 unit(s) labelled, awaiting carrier collection"),
        ("dispatched", "2 unit(s) dispatched, tracking TRACK-a1"),
        ("closed", "line closed: 2 shipped, 0 cancelled"),
    ]
    assert lines.mocked.events() == ["allocated", "backordered", "dispatched"]


async def test_a_repeated_allocation_signal_is_ignored(lines):
    handle = await lines.start()
    allocation = AllocationRef("a1", 1, "receipt", "R-1")
    await handle.signal(Signal.ALLOCATED, allocation)
    await eventually(lambda: state(handle), lambda s: s.shipped_quantity == 1,
                     what="the first unit to ship")
    await handle.signal(Signal.ALLOCATED, allocation)  # the outbox delivers it again
    await handle.signal(Signal.CANCEL, CancelNotice("cx-1", "customer asked", 1))
    result = await handle.result()

    assert lines.mocked.steps == [(step, "a1") for step in DISPATCH]
    assert len(result.allocations) == 1
    assert (result.shipped_quantity, result.cancelled_quantity, result.waiting_quantity) == (
        1, 1, 0)
    assert lines.mocked.events().count("allocated") == 1


async def test_cancelling_before_any_allocation_closes_the_line_cancelled(lines):
    handle = await lines.start()
    await handle.signal(Signal.CANCEL, CancelNotice("cx-1", "customer changed mind", 2))
    result = await handle.result()

    assert (result.status, result.cancelled_quantity, result.waiting_quantity) == (
        "cancelled", 2, 0)
    assert lines.mocked.steps == []
    assert await scheduled_activities(handle) == ["notify_line", "notify_line"]
    assert lines.mocked.events() == ["backordered", "cancelled"]


async def test_a_status_update_goes_out_once_the_configured_hours_have_passed(lines):
    handle = await lines.start(status_update_hours=24, escalate_after_hours=30 * 24)
    await notices(lines, 1, "the backorder message")
    await lines.env.sleep(timedelta(hours=23))
    await state(handle)
    assert lines.mocked.events() == ["backordered"]

    await lines.env.sleep(timedelta(hours=2))
    update = (await notices(lines, 2, "the status update"))[1]
    started = (await handle.describe()).start_time
    assert update.event == "status_update" and update.days_waiting == 1
    assert update.key.startswith(f"{update.line_id}:status_update:")
    assert timedelta(hours=24) <= update.occurred_at - started < timedelta(hours=25)


@pytest.mark.parametrize("tier", ["gold", "platinum", "standard"])
async def test_gold_and_platinum_customers_are_escalated_at_once_others_after_waiting(
    lines, tier
):
    """The relay sets `escalate_at_once` from the tier (NOTIFY_ESCALATE_TIERS); the line
    then escalates as it starts, or once it has waited `escalate_after_hours`."""
    at_once = tier in Settings(_env_file=None).notify_escalate_tiers
    assert at_once == (tier != "standard")
    await lines.start(customer_tier=tier, escalate_at_once=at_once,
                      escalate_after_hours=48, status_update_hours=49)
    # Messages go out side by side: what was sent together is compared as a set.
    first = {n.key.split(":", 1)[1] for n in await notices(lines, 1 + at_once, "the first")}
    assert first == ({"backordered", "escalation:tier"} if at_once else {"backordered"})

    await lines.env.sleep(timedelta(hours=50))
    # The status update at 49 hours comes after any escalation due at 48.
    sent = await notices(lines, 3, "the status update")
    assert sent[2].key.split(":", 1)[1].startswith("status_update:")
    if not at_once:
        assert sent[1].key.endswith(":escalation:waited")
        assert sent[1].detail == "waiting 2 day(s) for 2 unit(s)"


async def test_a_held_line_dispatches_nothing_until_it_is_released(lines):
    handle = await lines.start(quantity=2, backordered_quantity=0, held=True,
                               intake_allocation=AllocationRef("a1", 2, "stock"))
    held = await state(handle)
    assert held.status == "allocated"
    await lines.env.sleep(timedelta(days=2))
    await state(handle)
    assert await scheduled_activities(handle) == []

    await handle.signal(Signal.RELEASE)
    result = await handle.result()
    assert lines.mocked.steps == [(step, "a1") for step in DISPATCH]
    assert result.status == "dispatched"
    kinds = [e.kind for e in result.timeline]
    assert kinds.index("released") < kinds.index("picking")


async def test_a_line_continued_by_earlier_code_keeps_its_hold(lines):
    """Runs continued before `LineProgress.held` existed carried the hold in the input."""
    allocation = AllocationView("a1", 2, "stock", "allocated")
    progress = LineProgress(0, 0, 0, [allocation], [], [])
    assert progress.held is False
    handle = await lines.start(backordered_quantity=0, held=True, progress=progress)
    await state(handle)
    assert await scheduled_activities(handle) == []

    await handle.signal(Signal.RELEASE)
    result = await handle.result()
    assert lines.mocked.steps == [(step, "a1") for step in DISPATCH]
    assert result.shipped_quantity == 2


async def test_continuing_as_new_carries_the_line_on_unchanged(lines):
    handle = await lines.start(quantity=3, backordered_quantity=3, history_limit=20)
    first_run = (await handle.describe()).run_id
    await handle.signal(Signal.ALLOCATED, AllocationRef("a1", 1, "receipt", "R-1"))
    await eventually(lambda: handle.describe(), lambda d: d.run_id != first_run,
                     what="the line to continue as new")
    await handle.signal(Signal.ALLOCATED, AllocationRef("a1", 1, "receipt", "R-1"))  # seen
    await handle.signal(Signal.CANCEL, CancelNotice("cx-1", "customer asked", 1))
    await handle.signal(Signal.CANCEL, CancelNotice("cx-1", "customer asked", 1))  # seen
    await handle.signal(Signal.ALLOCATED, AllocationRef("a2", 1, "receipt", "R-2"))
    result = await handle.result()

    assert (result.shipped_quantity, result.cancelled_quantity, result.waiting_quantity) == (
        2, 1, 0)
    assert [a.allocation_id for a in result.allocations] == ["a1", "a2"]
    kinds = [e.kind for e in result.timeline]
    assert kinds[0] == "backordered" and "continued" in kinds
    assert lines.mocked.events().count("backordered") == 1
