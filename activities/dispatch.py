"""Pick, pack and ship activities: warehouse calls plus conditional ledger transitions.

Each is safe to retry at any point: the warehouse adapter is idempotent per allocation
and the ledger transitions move only forward, so a retried ship never ships twice."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.warehouse import Warehouse, WarehouseTask
from backorders.contracts.activities import StepInput, StepResult
from backorders.domain.lifecycle import AllocationStatus, has_reached
from backorders.services import dispatch
from backorders.services.dispatch import StepOutcome

S = AllocationStatus


def _task(step: StepInput) -> WarehouseTask:
    return WarehouseTask(uuid.UUID(step.allocation_id), uuid.UUID(step.line_id), step.sku,
                         step.quantity)


def _result(step: StepInput, outcome: StepOutcome) -> StepResult:
    return StepResult(step.allocation_id, outcome.status.value, outcome.tracking_number)


class DispatchActivities:
    def __init__(self, engine: AsyncEngine, warehouse: Warehouse) -> None:
        self._engine = engine
        self._warehouse = warehouse

    async def _guard(self, coro):  # type: ignore[no-untyped-def]
        """Turn ledger refusals into non-retryable failures: retrying cannot fix them."""
        try:
            return await coro
        except dispatch.AllocationNotFound as exc:
            raise ApplicationError(str(exc), type="AllocationNotFound", non_retryable=True) from exc
        except dispatch.OutOfOrder as exc:
            raise ApplicationError(str(exc), type="OutOfOrder", non_retryable=True) from exc

    @activity.defn(name="pick")
    async def pick(self, step: StepInput) -> StepResult:
        outcome = await self._guard(dispatch.advance(
            self._engine, uuid.UUID(step.allocation_id), uuid.UUID(step.line_id), S.PICKING))
        if outcome.status is not S.CANCELLED:
            await self._warehouse.pick(_task(step))
        return _result(step, outcome)

    @activity.defn(name="pack")
    async def pack(self, step: StepInput) -> StepResult:
        allocation_id = uuid.UUID(step.allocation_id)
        outcome = await self._guard(dispatch.current(self._engine, allocation_id))
        if outcome.status is S.CANCELLED:
            return _result(step, outcome)
        if not has_reached(outcome.status, S.PACKED):
            await self._warehouse.pack(_task(step))
        outcome = await self._guard(
            dispatch.advance(self._engine, allocation_id, uuid.UUID(step.line_id), S.PACKED)
        )
        return _result(step, outcome)

    @activity.defn(name="label")
    async def label(self, step: StepInput) -> StepResult:
        """Label the parcel and book the carrier: it now awaits collection."""
        allocation_id = uuid.UUID(step.allocation_id)
        outcome = await self._guard(dispatch.current(self._engine, allocation_id))
        if outcome.status is S.CANCELLED or has_reached(outcome.status, S.AWAITING_SHIPMENT):
            return _result(step, outcome)
        await self._warehouse.book_carrier(_task(step))
        outcome = await self._guard(dispatch.advance(
            self._engine, allocation_id, uuid.UUID(step.line_id), S.AWAITING_SHIPMENT))
        return _result(step, outcome)

    @activity.defn(name="ship")
    async def ship(self, step: StepInput) -> StepResult:
        """Hand the parcel to the carrier once it calls: the point of no return."""
        allocation_id = uuid.UUID(step.allocation_id)
        task = _task(step)
        outcome = await self._guard(dispatch.current(self._engine, allocation_id))
        if outcome.status in (S.CANCELLED, S.DISPATCHED):
            return _result(step, outcome)
        await self._warehouse.await_collection(task)
        outcome = await self._guard(dispatch.begin_dispatch(self._engine, allocation_id))
        if outcome.status in (S.CANCELLED, S.DISPATCHED):
            return _result(step, outcome)
        tracking = await self._warehouse.hand_over(task)
        outcome = await self._guard(dispatch.complete_dispatch(
            self._engine, allocation_id, uuid.UUID(step.line_id), step.sku, tracking))
        activity.logger.info("allocation %s dispatched, tracking %s", step.allocation_id, tracking)
        return _result(step, outcome)

    @activity.defn(name="release")
    async def release(self, step: StepInput) -> None:
        await self._warehouse.release(_task(step))

    def all(self) -> list:
        return [self.pick, self.pack, self.label, self.ship, self.release]
