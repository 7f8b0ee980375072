"""One durable workflow per order line: it waits for stock, however long it takes, and
drives every quantity allocated to it through pick, pack and ship.

Messages arrive at least once and in any order (allocations, cancellations), so every
signal is idempotent and the accounting does not depend on arrival order. The database
is the system of record; this workflow follows it and shows it to ops (query and
search attributes)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dispatch import DispatchActivities
    from backorders import search_attributes as keys
    from backorders.contracts import (
        AllocationRef,
        AllocationView,
        CancelNotice,
        LineInput,
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
    )

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
        self._publish_status()
        while not self._finished():
            await workflow.wait_condition(
                lambda: bool(self._to_dispatch)
                or self._finished()
                or self._failure is not None
                or self._should_continue_as_new()
            )
            if self._failure is not None:
                raise ApplicationError(self._failure, type="DispatchFailed", non_retryable=True)
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._should_continue_as_new():
                    self._note("continued", "history continued in a new run")
                    workflow.continue_as_new(self._continued_input())
            while self._to_dispatch:
                self._dispatching += 1
                self._tasks.append(asyncio.create_task(self._dispatch(self._to_dispatch.pop(0))))
        await workflow.wait_condition(workflow.all_handlers_finished)
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
        total = notice.waiting_quantity + sum(r.quantity for r in notice.allocations)
        self._note("cancelled", f"{total} unit(s) cancelled: {notice.reason}")
        self._publish_status()

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
        elif new == S.CANCELLED:
            self._cancelled += allocation.quantity
            self._note("cancelled", f"{allocation.quantity} allocated unit(s) cancelled")
        else:
            self._note(new.value, f"{allocation.quantity} unit(s) {STEP_DONE[new]}")
        self._publish_status()

    # --- continue as new ----------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        idle = not self._to_dispatch and self._dispatching == 0
        too_long = (info.is_continue_as_new_suggested()
                    or info.get_current_history_length() >= self._line.history_limit)
        return idle and too_long and not self._finished()

    def _continued_input(self) -> LineInput:
        return dataclasses.replace(self._line, progress=LineProgress(
            waiting_quantity=self._waiting,
            shipped_quantity=self._shipped,
            cancelled_quantity=self._cancelled,
            allocations=list(self._allocations.values()),
            seen_cancels=sorted(self._seen_cancels),
            timeline=self._timeline[-CARRIED_TIMELINE:],
        ))

    def _restore(self, progress: LineProgress) -> None:
        self._waiting = progress.waiting_quantity
        self._shipped = progress.shipped_quantity
        self._cancelled = progress.cancelled_quantity
        self._allocations = {a.allocation_id: a for a in progress.allocations}
        self._seen_cancels = set(progress.seen_cancels)
        self._timeline = list(progress.timeline)
        # Nothing was in flight when the previous run continued; resume anything unfinished
        # all the same (every step is idempotent).
        self._to_dispatch = [a.allocation_id for a in progress.allocations
                             if S(a.status) not in TERMINAL]

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
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([keys.BACKORDER_STATUS.value_set(status.value)])

    def _note(self, kind: str, message: str) -> None:
        self._timeline.append(TimelineEntry(workflow.now(), kind, message))
        workflow.logger.info("line %s (%s, order %s): %s", self._line.line_id, self._line.sku,
                             self._line.order_number, message)
