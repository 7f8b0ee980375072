"""One durable workflow per order line: it waits for stock, however long it takes, and
drives every quantity allocated to it through pick, pack and ship.

Messages arrive at least once and in any order (allocations, cancellations), so every
signal is idempotent and the accounting does not depend on arrival order. The database
is the system of record; this workflow follows it and shows it to ops (query and
search attributes)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dispatch import DispatchActivities
    from activities.notify import NotifyActivities
    from backorders import search_attributes as keys
    from backorders.contracts import (
        AllocationRef,
        AllocationView,
        CancelNotice,
        DelayNotice,
        EtaNotice,
        LineInput,
        LineNotice,
        LineProgress,
        LineState,
        StepInput,
        StepResult,
        TimelineEntry,
    )
    from backorders.domain.lifecycle import (
        TERMINAL,
        AllocationStatus,
        LineStatus,
        line_status,
        search_status,
    )
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
# What a finished step means, as the workflow hears of it once the activity completes.
STEP_DONE = {
    S.PICKING: "picked",
    S.PACKED: "packed",
    S.AWAITING_SHIPMENT: "labelled, awaiting carrier collection",
}
# Timeline entries carried into a continued run; the database keeps the full timeline.
CARRIED_TIMELINE = 100

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


@workflow.defn(name="BackorderLine")
class LineWorkflow:
    @workflow.init
    def __init__(self, line: LineInput) -> None:
        self._line = line
        self._to_dispatch: list[str] = []
        self._dispatching = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._status: LineStatus | None = None
        self._failure: str | None = None
        self._held = line.held
        self._expected_date = line.expected_date
        self._no_supply = line.no_supply
        self._notices: list[LineNotice] = []
        self._notifying = 0
        self._notifications_on = False
        progress = line.progress
        if progress is not None:
            self._restore(progress)
            return
        self._waiting = line.backordered_quantity
        self._shipped = 0
        self._cancelled = 0
        self._allocations: dict[str, AllocationView] = {}
        self._seen_cancels: set[str] = set()
        self._timeline: list[TimelineEntry] = []
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
                lambda: (bool(self._to_dispatch) and not self._held)
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
            while self._to_dispatch and not self._held:
                self._dispatching += 1
                self._tasks.append(asyncio.create_task(self._dispatch(self._to_dispatch.pop(0))))
        self._send_notices()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._notifying == 0)
        self._note("closed", f"line closed: {self._shipped} shipped, {self._cancelled} cancelled")
        return self.state()

    # --- messages from the outbox -------------------------------------------------------

    @workflow.signal
    def allocated(self, ref: AllocationRef) -> None:
        if ref.allocation_id in self._allocations:
            return  # a repeat delivery, or it was cancelled before it reached us
        self._waiting -= ref.quantity
        source = f"receipt {ref.receipt_id}" if ref.receipt_id else ref.source.replace("_", " ")
        self._accept(ref, f"allocated from {source}")
        self._notice(Event.ALLOCATED, f"allocated:{ref.allocation_id}",
                     f"{ref.quantity} unit(s) allocated", quantity=ref.quantity)
        self._publish_status()

    @workflow.signal
    def cancel(self, notice: CancelNotice) -> None:
        if notice.event_id in self._seen_cancels:
            return
        self._seen_cancels.add(notice.event_id)
        self._waiting -= notice.waiting_quantity
        self._cancelled += notice.waiting_quantity
        for ref in notice.allocations:
            allocation = self._allocations.get(ref.allocation_id)
            if allocation is None:
                # The cancellation overtook the allocation's own message: count it now.
                self._waiting -= ref.quantity
                self._allocations[ref.allocation_id] = AllocationView(
                    ref.allocation_id, ref.quantity, ref.source, S.CANCELLED.value
                )
                self._cancelled += ref.quantity
            elif S(allocation.status) not in TERMINAL:
                allocation.status = S.CANCELLED.value
                self._cancelled += allocation.quantity
        # Held allocations that were cancelled will never dispatch.
        self._to_dispatch = [a for a in self._to_dispatch
                             if self._allocations[a].status != S.CANCELLED.value]
        total = notice.waiting_quantity + sum(r.quantity for r in notice.allocations)
        self._note("cancelled", f"{total} unit(s) cancelled: {notice.reason}")
        self._notice(Event.CANCELLED, f"cancelled:{notice.event_id}", notice.reason,
                     quantity=total)
        self._publish_status()

    @workflow.signal
    def delayed(self, notice: DelayNotice) -> None:
        """Supply for this line slipped: tell the customer, with the new date if known."""
        if notice.event_id in self._seen_cancels or self._waiting <= 0:  # applied event ids
            return
        self._seen_cancels.add(notice.event_id)
        self._note("delayed", notice.reason)
        self._notice(Event.DELAYED, f"delayed:{notice.event_id}", notice.reason)

    @workflow.signal
    def release(self) -> None:
        """The whole ship-complete order is in hand: what this line holds can ship."""
        if self._held:
            self._held = False
            self._note("released", "the whole order is in hand: shipping together")

    @workflow.signal
    def expected(self, notice: EtaNotice) -> None:
        """The expected date was recomputed; the customer hears when it moved a lot."""
        if notice.event_id in self._seen_cancels or self._waiting <= 0:  # applied event ids
            return
        self._seen_cancels.add(notice.event_id)
        self._expected_date, self._no_supply = notice.expected_date, notice.no_supply
        self._note("expected_date", notice.reason)
        if notice.tell_customer:
            event = Event.DELAYED if notice.later else Event.STATUS_UPDATE
            self._notice(event, f"expected:{notice.event_id}", notice.reason)

    @workflow.query
    def state(self) -> LineState:
        line = self._line
        return LineState(
            line_id=line.line_id,
            order_id=line.order_id,
            order_number=line.order_number,
            sku=line.sku,
            customer_id=line.customer_id,
            customer_tier=line.customer_tier,
            status=self._current_status().value,
            quantity=line.quantity,
            waiting_quantity=self._waiting,
            shipped_quantity=self._shipped,
            cancelled_quantity=self._cancelled,
            allocations=list(self._allocations.values()),
            timeline=list(self._timeline),
            expected_date=self._expected_date if self._waiting > 0 else None,
            no_supply=self._no_supply and self._waiting > 0,
        )

    # --- dispatch -----------------------------------------------------------------------

    async def _dispatch(self, allocation_id: str) -> None:
        allocation = self._allocations[allocation_id]
        step = StepInput(allocation_id, self._line.line_id, self._line.sku, allocation.quantity)
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
            self._failure = (f"dispatch of allocation {allocation_id} failed: "
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
            self._shipped += allocation.quantity
            allocation.tracking_number = result.tracking_number
            self._note("dispatched", f"{allocation.quantity} unit(s) dispatched, "
                                     f"tracking {result.tracking_number}")
            self._notice(Event.DISPATCHED, f"dispatched:{allocation.allocation_id}",
                         f"{allocation.quantity} unit(s) dispatched",
                         quantity=allocation.quantity)
        elif new == S.CANCELLED:
            self._cancelled += allocation.quantity
            self._note("cancelled", f"{allocation.quantity} allocated unit(s) cancelled")
        else:
            self._note(new.value, f"{allocation.quantity} unit(s) {STEP_DONE[new]}")
        self._publish_status()

    # --- continue as new ----------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        idle = (not self._to_dispatch and self._dispatching == 0
                and not self._notices and self._notifying == 0)
        too_long = (info.is_continue_as_new_suggested()
                    or info.get_current_history_length() >= self._line.history_limit)
        return idle and too_long and not self._finished()

    def _continued_input(self) -> LineInput:
        return dataclasses.replace(self._line, held=self._held, progress=LineProgress(
            waiting_quantity=self._waiting,
            shipped_quantity=self._shipped,
            cancelled_quantity=self._cancelled,
            allocations=list(self._allocations.values()),
            seen_cancels=sorted(self._seen_cancels),
            timeline=self._timeline[-CARRIED_TIMELINE:],
            expected_date=self._expected_date,
            no_supply=self._no_supply,
        ))

    def _restore(self, progress: LineProgress) -> None:
        self._waiting = progress.waiting_quantity
        self._shipped = progress.shipped_quantity
        self._cancelled = progress.cancelled_quantity
        self._allocations = {a.allocation_id: a for a in progress.allocations}
        self._seen_cancels = set(progress.seen_cancels)
        self._timeline = list(progress.timeline)
        self._expected_date, self._no_supply = progress.expected_date, progress.no_supply
        # Nothing was in flight when the previous run continued; resume anything unfinished
        # all the same (every step is idempotent).
        self._to_dispatch = [a.allocation_id for a in progress.allocations
                             if S(a.status) not in TERMINAL]

    # --- notifications ------------------------------------------------------------------

    def _announce_backorder(self) -> None:
        """A new backorder: tell the customer, escalate a high-tier customer's wait at
        once, and keep them posted on durable timers while the line waits."""
        line = self._line
        if not line.backordered_quantity:
            return
        if line.progress is None:
            self._notice(Event.BACKORDERED, "backordered",
                         f"{line.backordered_quantity} unit(s) backordered")
            if line.escalate_at_once:
                self._notice(Event.ESCALATION, "escalation:tier",
                             f"{line.customer_tier} customer waiting for "
                             f"{line.backordered_quantity} unit(s)")
        self._tasks.append(asyncio.create_task(self._remind_while_waiting()))

    async def _remind_while_waiting(self) -> None:
        line = self._line
        since = workflow.now()
        every = timedelta(hours=line.status_update_hours)
        next_update = since + every
        escalate_at = since + timedelta(hours=line.escalate_after_hours)
        escalated = line.escalate_at_once
        promise_at = promise_told = None
        if line.promised_date is not None:
            promised = date.fromisoformat(line.promised_date)
            promise_at = datetime.combine(promised + timedelta(days=1), time(0), tzinfo=UTC)
            promise_told = False
        while not self._finished():
            due = []
            if self._waiting > 0:
                due.append(next_update)
                if not escalated:
                    due.append(escalate_at)
            if promise_at is not None and not promise_told:
                due.append(promise_at)
            if not due:
                return
            wait = max(min(due) - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(self._finished, timeout=wait)
                return
            except TimeoutError:
                pass
            now = workflow.now()
            days = (now - since).days
            if self._waiting > 0 and now >= next_update:
                self._notice(Event.STATUS_UPDATE, f"status_update:{int(next_update.timestamp())}",
                             None, days)
                next_update += every
            if self._waiting > 0 and not escalated and now >= escalate_at:
                escalated = True
                self._notice(Event.ESCALATION, "escalation:waited",
                             f"waiting {days} day(s) for {self._waiting} unit(s)", days)
            if promise_at is not None and not promise_told and now >= promise_at:
                promise_told = True
                undelivered = line.quantity - self._shipped - self._cancelled
                if undelivered > 0:
                    detail = (f"promised by {line.promised_date}; "
                              f"{undelivered} unit(s) not yet shipped")
                    self._note("promise_missed", detail)
                    self._notice(Event.PROMISE_MISSED, "promise_missed", detail, days)
                    self._notice(Event.STAFF_PROMISE_MISSED, "promise_missed:staff", detail, days)

    def _notice(self, event: Event, key: str, detail: str | None, days: int = 0,
                quantity: int = 0) -> None:
        """Queue a message; the run loop sends it (once notifications are known to be on:
        signals can arrive before the run starts)."""
        if event in (Event.DISPATCHED, Event.CANCELLED) and not self._line.backordered_quantity:
            return  # never a backorder: the shop's own order emails cover it
        self._notices.append(LineNotice(
            line_id=self._line.line_id, event=event.value, key=f"{self._line.line_id}:{key}",
            occurred_at=workflow.now(), detail=detail, days_waiting=days, quantity=quantity))

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
        self._allocations[ref.allocation_id] = AllocationView(
            ref.allocation_id, ref.quantity, ref.source, S.ALLOCATED.value, ref.receipt_id
        )
        self._to_dispatch.append(ref.allocation_id)
        self._note("allocated", f"{ref.quantity} unit(s) {how}")

    def _finished(self) -> bool:
        return (
            self._waiting <= 0
            and not self._to_dispatch
            and self._dispatching == 0
            and all(S(a.status) in TERMINAL for a in self._allocations.values())
        )

    def _current_status(self) -> LineStatus:
        return line_status(
            waiting=self._waiting,
            shipped=self._shipped,
            in_progress=[a.status for a in self._allocations.values()
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
        self._timeline.append(TimelineEntry(workflow.now(), kind, message))
        workflow.logger.info("line %s (%s, order %s): %s", self._line.line_id, self._line.sku,
                             self._line.order_number, message)
