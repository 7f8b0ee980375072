"""One durable workflow per order line: it waits for stock, however long it takes, and
drives every quantity allocated to it through pick, pack and ship.

Messages arrive at least once and in any order (allocations, cancellations), so every
signal is idempotent and the accounting does not depend on arrival order. The database
is the system of record; this workflow follows it and shows it to ops (query and
search attributes). Everything durable it knows is one `LineProgress`, carried as is
into the next run when the history grows long."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dispatch import DispatchActivities
    from activities.notify import NotifyActivities
    from backorders import search_attributes as keys
    from backorders.contracts.activities import LineNotice, StepInput, StepResult
    from backorders.contracts.line import (
        QUERY_STATE,
        WORKFLOW_TYPE,
        AllocationRef,
        AllocationView,
        CancelNotice,
        DelayNotice,
        EtaNotice,
        LineInput,
        LineProgress,
        LineState,
        Signal,
        TimelineEntry,
    )
    from backorders.domain.lifecycle import (
        TERMINAL,
        AllocationStatus,
        LineStatus,
        line_status,
        search_status,
    )
    from backorders.domain.reminders import Fired, Reminders
    from backorders.domain.steps import STEPS, dispatched_message
    from backorders.notify.message import Event

S = AllocationStatus

DISPATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["AllocationNotFound", "OutOfOrder"],
)
STEP_TIMEOUT = timedelta(minutes=10)
# Also how soon a step that a dead worker held is retried elsewhere: steps that do not
# wait on the warehouse finish in milliseconds, and waiting ones heartbeat every second.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Timeline entries carried into a continued run; the database keeps the full timeline.
CARRIED_TIMELINE = 100

# Patches. Retire them as README's "Retiring workflow patches" says: once no line that
# started before one is running or retained, deprecate_patch it and delete the recorded
# histories that predate it (tests/histories/*--v1 for NOTIFICATIONS, --v1 to --v3 for
# SEARCH_STATUS); tests/test_replay.py over the rest proves it safe.
NOTIFICATIONS = "notifications-v1"
"""Patch: lines started before notifications existed replay without them."""
SEARCH_STATUS = "search-status-v1"
"""Patch: BackorderStatus shows the warehouse steps as `allocated`, and is written only
when it changes from what the workflow already carries (it starts with it)."""
NOTIFY_TIMEOUT = timedelta(minutes=5)
# The message activities heartbeat while they send (`activities.heartbeat`): an attempt
# lost with its worker, or whose result a restarting server never got, is retried after
# this, not after NOTIFY_TIMEOUT. The repeat finds the message already sent.
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# A message that cannot be sent after a day of trying is given up (and shows as such):
# it must never hold the line itself up.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=2),
    maximum_attempts=20,
)
NOTIFY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": NOTIFY_TIMEOUT,
    "heartbeat_timeout": NOTIFY_HEARTBEAT_TIMEOUT,
    "retry_policy": NOTIFY_RETRY,
}
"""How every message activity runs (the bench's ceiling runs its own the same way)."""

DISPATCH_STEPS = (
    DispatchActivities.pick,
    DispatchActivities.pack,
    DispatchActivities.label,
    DispatchActivities.ship,
)


def _new_line(line: LineInput) -> LineProgress:
    """A line's first run: everything backordered waits, nothing has happened yet."""
    return LineProgress(
        waiting_quantity=line.backordered_quantity, shipped_quantity=0, cancelled_quantity=0,
        allocations=[], seen_cancels=[], timeline=[],
        expected_date=line.expected_date, no_supply=line.no_supply, held=line.held,
        likely_date=line.likely_date, latest_date=line.latest_date,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class LineWorkflow:
    @workflow.init
    def __init__(self, line: LineInput) -> None:
        self._line = line
        # In flight in this run only (nothing is when a run continues as new).
        self._to_dispatch: list[AllocationView] = []
        self._dispatching = 0
        self._notices: list[LineNotice] = []
        self._notifying = 0
        self._notifications_on = False
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: str | None = None
        self._status: LineStatus | None = None  # last written, before SEARCH_STATUS
        # Which request each allocation came from, for its activities' logs (this run only).
        self._request_of: dict[str, str | None] = {}
        if line.progress is not None:
            # The input's `held` is where a run starts from: runs continued by earlier
            # code carried it there alone.
            self._progress = dataclasses.replace(line.progress, held=line.held)
            # Nothing was in flight when the previous run continued; resume anything
            # unfinished all the same (every step is idempotent).
            self._to_dispatch = [a for a in self._progress.allocations
                                 if S(a.status) not in TERMINAL]
            return
        self._progress = _new_line(line)
        if line.backordered_quantity:
            self._note("backordered", f"{line.backordered_quantity} unit(s) waiting for stock")
        if line.intake_allocation is not None:
            self._accept(line.intake_allocation, "reserved from stock")

    @workflow.run
    async def run(self, line: LineInput) -> LineState:
        self._notifications_on = workflow.patched(NOTIFICATIONS)
        if self._notifications_on:
            self._announce_backorder()
        else:
            self._notices.clear()
        self._publish_status()
        while not self._finished():
            await workflow.wait_condition(
                lambda: self._can_dispatch()
                or bool(self._notices)
                or self._finished()
                or self._failure is not None
                or self._should_continue_as_new()
            )
            self._send_notices()
            if self._failure is not None:
                raise ApplicationError(self._failure, type="DispatchFailed", non_retryable=True)
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._should_continue_as_new():
                    self._note("continued", "history continued in a new run")
                    workflow.continue_as_new(self._continued_input())
            while self._can_dispatch():
                self._dispatching += 1
                self._tasks.append(asyncio.create_task(self._dispatch(self._to_dispatch.pop(0))))
        self._send_notices()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._notifying == 0)
        progress = self._progress
        self._note("closed", f"line closed: {progress.shipped_quantity} shipped, "
                             f"{progress.cancelled_quantity} cancelled")
        return self.state()

    # --- messages from the outbox -------------------------------------------------------

    @workflow.signal(name=Signal.ALLOCATED)
    def allocated(self, ref: AllocationRef) -> None:
        if self._allocation(ref.allocation_id) is not None:
            return  # a repeat delivery, or it was cancelled before it reached us
        self._progress.waiting_quantity -= ref.quantity
        source = f"receipt {ref.receipt_id}" if ref.receipt_id else ref.source.replace("_", " ")
        self._accept(ref, f"allocated from {source}")
        self._notice(Event.ALLOCATED, f"allocated:{ref.allocation_id}",
                     f"{ref.quantity} unit(s) allocated", quantity=ref.quantity,
                     request_id=ref.request_id)
        self._publish_status()

    @workflow.signal(name=Signal.CANCEL)
    def cancel(self, notice: CancelNotice) -> None:
        if not self._first_delivery(notice.event_id):
            return
        progress = self._progress
        progress.waiting_quantity -= notice.waiting_quantity
        progress.cancelled_quantity += notice.waiting_quantity
        for ref in notice.allocations:
            allocation = self._allocation(ref.allocation_id)
            if allocation is None:
                # The cancellation overtook the allocation's own message: count it now.
                progress.waiting_quantity -= ref.quantity
                progress.allocations.append(AllocationView(
                    ref.allocation_id, ref.quantity, ref.source, S.CANCELLED.value))
                progress.cancelled_quantity += ref.quantity
            elif S(allocation.status) not in TERMINAL:
                allocation.status = S.CANCELLED.value
                progress.cancelled_quantity += allocation.quantity
        # Held allocations that were cancelled will never dispatch.
        self._to_dispatch = [a for a in self._to_dispatch if a.status != S.CANCELLED.value]
        total = notice.waiting_quantity + sum(r.quantity for r in notice.allocations)
        self._note("cancelled", f"{total} unit(s) cancelled: {notice.reason}")
        self._notice(Event.CANCELLED, f"cancelled:{notice.event_id}", notice.reason,
                     quantity=total, request_id=notice.request_id)
        self._publish_status()

    @workflow.signal(name=Signal.DELAYED)
    def delayed(self, notice: DelayNotice) -> None:
        """Supply for this line slipped: tell the customer, with the new date if known."""
        if self._progress.waiting_quantity <= 0 or not self._first_delivery(notice.event_id):
            return
        self._note("delayed", notice.reason)
        self._notice(Event.DELAYED, f"delayed:{notice.event_id}", notice.reason,
                     request_id=notice.request_id)

    @workflow.signal(name=Signal.RELEASE)
    def release(self) -> None:
        """The whole ship-complete order is in hand: what this line holds can ship."""
        if self._progress.held:
            self._progress.held = False
            self._note("released", "the whole order is in hand: shipping together")

    @workflow.signal(name=Signal.EXPECTED)
    def expected(self, notice: EtaNotice) -> None:
        """The expected date was recomputed; the customer hears when it moved a lot."""
        progress = self._progress
        if progress.waiting_quantity <= 0 or not self._first_delivery(notice.event_id):
            return
        progress.expected_date, progress.no_supply = notice.expected_date, notice.no_supply
        # State only (no command): notices written before honest dates carry none.
        progress.likely_date, progress.latest_date = notice.likely_date, notice.latest_date
        self._note("expected_date", notice.reason)
        if notice.tell_customer:
            event = Event.DELAYED if notice.later else Event.STATUS_UPDATE
            self._notice(event, f"expected:{notice.event_id}", notice.reason,
                         request_id=notice.request_id)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> LineState:
        line, progress = self._line, self._progress
        waiting = progress.waiting_quantity
        return LineState(
            line_id=line.line_id,
            order_id=line.order_id,
            order_number=line.order_number,
            sku=line.sku,
            customer_id=line.customer_id,
            customer_tier=line.customer_tier,
            status=self._current_status().value,
            quantity=line.quantity,
            waiting_quantity=waiting,
            shipped_quantity=progress.shipped_quantity,
            cancelled_quantity=progress.cancelled_quantity,
            allocations=list(progress.allocations),
            timeline=list(progress.timeline),
            expected_date=progress.expected_date if waiting > 0 else None,
            no_supply=progress.no_supply and waiting > 0,
            likely_date=progress.likely_date if waiting > 0 else None,
            latest_date=progress.latest_date if waiting > 0 else None,
        )

    # --- dispatch -----------------------------------------------------------------------

    async def _dispatch(self, allocation: AllocationView) -> None:
        request_id = self._request_of.get(allocation.allocation_id)
        step = StepInput(allocation.allocation_id, self._line.line_id, self._line.sku,
                         allocation.quantity, order_id=self._line.order_id,
                         receipt_id=allocation.receipt_id, request_id=request_id)
        touched_warehouse = False
        try:
            for activity_method in DISPATCH_STEPS:
                if allocation.status == S.CANCELLED:
                    break
                result = await workflow.execute_activity_method(
                    activity_method,
                    step,
                    start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=DISPATCH_RETRY,
                )
                touched_warehouse = True
                self._apply(allocation, result)
                if result.status == S.CANCELLED:
                    break
            if allocation.status == S.CANCELLED and touched_warehouse:
                await workflow.execute_activity_method(
                    DispatchActivities.release,
                    step,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=DISPATCH_RETRY,
                )
                self._note("released", f"{allocation.quantity} picked unit(s) put back")
        except ActivityError as err:
            # Retries are unlimited, so only a non-retryable refusal ends up here: the
            # ledger and this line disagree. Fail loudly rather than wait forever.
            self._failure = (f"dispatch of allocation {allocation.allocation_id} failed: "
                             f"{err.cause.message if err.cause else err.message}")
            self._note("failed", self._failure)
        finally:
            self._dispatching -= 1

    def _apply(self, allocation: AllocationView, result: StepResult) -> None:
        new = S(result.status)
        if S(allocation.status) in TERMINAL or new == S(allocation.status):
            return
        allocation.status = new.value
        if new == S.DISPATCHED:
            self._progress.shipped_quantity += allocation.quantity
            allocation.tracking_number = result.tracking_number
            self._note("dispatched", dispatched_message(allocation.quantity,
                                                        result.tracking_number))
            self._notice(Event.DISPATCHED, f"dispatched:{allocation.allocation_id}",
                         f"{allocation.quantity} unit(s) dispatched",
                         quantity=allocation.quantity,
                         request_id=self._request_of.get(allocation.allocation_id))
        elif new == S.CANCELLED:
            self._progress.cancelled_quantity += allocation.quantity
            self._note("cancelled", f"{allocation.quantity} allocated unit(s) cancelled")
        else:
            self._note(new.value, STEPS[new].done_message(allocation.quantity))
        self._publish_status()

    def _can_dispatch(self) -> bool:
        return bool(self._to_dispatch) and not self._progress.held

    # --- continue as new ----------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        idle = (not self._to_dispatch and self._dispatching == 0
                and not self._notices and self._notifying == 0)
        too_long = (info.is_continue_as_new_suggested()
                    or info.get_current_history_length() >= self._line.history_limit)
        return idle and too_long and not self._finished()

    def _continued_input(self) -> LineInput:
        progress = dataclasses.replace(self._progress,
                                       timeline=self._progress.timeline[-CARRIED_TIMELINE:])
        return dataclasses.replace(self._line, held=progress.held, progress=progress)

    # --- notifications ------------------------------------------------------------------

    def _announce_backorder(self) -> None:
        """A new backorder: tell the customer, escalate a high-tier customer's wait at
        once, and keep them posted on durable timers while the line waits."""
        line = self._line
        if not line.backordered_quantity:
            return
        if line.progress is None:
            self._notice(Event.BACKORDERED, "backordered",
                         f"{line.backordered_quantity} unit(s) backordered",
                         request_id=line.request_id)
            if line.escalate_at_once:
                self._notice(Event.ESCALATION, "escalation:tier",
                             f"{line.customer_tier} customer waiting for "
                             f"{line.backordered_quantity} unit(s)", request_id=line.request_id)
        self._tasks.append(asyncio.create_task(self._remind_while_waiting()))

    async def _remind_while_waiting(self) -> None:
        line = self._line
        reminders = Reminders.start(
            workflow.now(), status_update_hours=line.status_update_hours,
            escalate_after_hours=line.escalate_after_hours, escalated=line.escalate_at_once,
            promised_date=line.promised_date)
        while not self._finished():
            due = reminders.next_due(waiting=self._progress.waiting_quantity > 0)
            if due is None:
                return
            try:
                await workflow.wait_condition(
                    self._finished, timeout=max(due - workflow.now(), timedelta(seconds=1)))
                return
            except TimeoutError:
                pass
            fired, reminders = reminders.fire(workflow.now(),
                                              waiting=self._progress.waiting_quantity > 0)
            self._remind(fired)

    def _remind(self, fired: Fired) -> None:
        line, progress, days = self._line, self._progress, fired.days_waiting
        if fired.status_update is not None:
            self._notice(Event.STATUS_UPDATE,
                         f"status_update:{int(fired.status_update.timestamp())}", None, days)
        if fired.escalation:
            self._notice(Event.ESCALATION, "escalation:waited",
                         f"waiting {days} day(s) for {progress.waiting_quantity} unit(s)", days)
        if fired.promise_check:
            undelivered = line.quantity - progress.shipped_quantity - progress.cancelled_quantity
            if undelivered > 0:
                detail = (f"promised by {line.promised_date}; "
                          f"{undelivered} unit(s) not yet shipped")
                self._note("promise_missed", detail)
                self._notice(Event.PROMISE_MISSED, "promise_missed", detail, days)
                self._notice(Event.STAFF_PROMISE_MISSED, "promise_missed:staff", detail, days)

    def _notice(self, event: Event, key: str, detail: str | None, days: int = 0,
                quantity: int = 0, request_id: str | None = None) -> None:
        """Queue a message; the run loop sends it (once notifications are known to be on:
        signals can arrive before the run starts)."""
        if event in (Event.DISPATCHED, Event.CANCELLED) and not self._line.backordered_quantity:
            return  # never a backorder: the shop's own order emails cover it
        self._notices.append(LineNotice(
            line_id=self._line.line_id, event=event.value, key=f"{self._line.line_id}:{key}",
            occurred_at=workflow.now(), detail=detail, days_waiting=days, quantity=quantity,
            order_id=self._line.order_id, request_id=request_id))

    def _send_notices(self) -> None:
        if not self._notifications_on:
            self._notices.clear()
            return
        while self._notices:
            self._notifying += 1
            self._tasks.append(asyncio.create_task(self._send(self._notices.pop(0))))

    async def _send(self, notice: LineNotice) -> None:
        try:
            outcome = await workflow.execute_activity_method(
                NotifyActivities.notify_line, notice, **NOTIFY_OPTIONS)
            if outcome.send_after is not None:  # the customer's quiet hours
                self._note("notification", f"{notice.event} message held until "
                                           f"{outcome.send_after.isoformat()} (quiet hours)")
                await workflow.sleep(max(outcome.send_after - workflow.now(),
                                         timedelta(seconds=1)))
                outcome = await workflow.execute_activity_method(
                    NotifyActivities.deliver, outcome.notification_ids, **NOTIFY_OPTIONS)
            self._note("notification", f"{notice.event} message: {outcome.status}")
        except ActivityError as err:
            self._note("notification", f"{notice.event} message could not be sent: "
                                       f"{err.cause.message if err.cause else err.message}")
        finally:
            self._notifying -= 1

    # --- bookkeeping --------------------------------------------------------------------

    def _accept(self, ref: AllocationRef, how: str) -> None:
        allocation = AllocationView(
            ref.allocation_id, ref.quantity, ref.source, S.ALLOCATED.value, ref.receipt_id
        )
        self._progress.allocations.append(allocation)
        self._to_dispatch.append(allocation)
        self._request_of[ref.allocation_id] = ref.request_id
        self._note("allocated", f"{ref.quantity} unit(s) {how}")

    def _allocation(self, allocation_id: str) -> AllocationView | None:
        return next((a for a in self._progress.allocations
                     if a.allocation_id == allocation_id), None)

    def _first_delivery(self, event_id: str) -> bool:
        """True the first time an event reaches the line, which records it as applied."""
        seen = self._progress.seen_cancels
        at = bisect.bisect_left(seen, event_id)
        if at < len(seen) and seen[at] == event_id:
            return False
        seen.insert(at, event_id)
        return True

    def _finished(self) -> bool:
        return (
            self._progress.waiting_quantity <= 0
            and not self._to_dispatch
            and self._dispatching == 0
            and all(S(a.status) in TERMINAL for a in self._progress.allocations)
        )

    def _current_status(self) -> LineStatus:
        return line_status(
            waiting=self._progress.waiting_quantity,
            shipped=self._progress.shipped_quantity,
            in_progress=[a.status for a in self._progress.allocations
                         if S(a.status) not in TERMINAL],
        )

    def _publish_status(self) -> None:
        status = self._current_status()
        if workflow.patched(SEARCH_STATUS):
            shown = search_status(status).value
            if workflow.info().typed_search_attributes.get(keys.BACKORDER_STATUS) != shown:
                workflow.upsert_search_attributes([keys.BACKORDER_STATUS.value_set(shown)])
            return
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([keys.BACKORDER_STATUS.value_set(status.value)])

    def _note(self, kind: str, message: str) -> None:
        self._progress.timeline.append(TimelineEntry(workflow.now(), kind, message))
        workflow.logger.info("line %s (%s, order %s): %s", self._line.line_id, self._line.sku,
                             self._line.order_number, message)
