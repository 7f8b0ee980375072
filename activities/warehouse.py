"""The warehouse (or 3PL) the dispatch activities drive, and a simulated one built in.

An adapter must make every call idempotent per allocation: the activities calling it
are retried after timeouts and worker crashes, and a retried hand-over must return the
first tracking number rather than ship again."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from backorders.db import direct_one


@dataclass(frozen=True)
class WarehouseTask:
    allocation_id: uuid.UUID
    line_id: uuid.UUID
    sku: str
    quantity: int


class Warehouse(Protocol):
    async def pick(self, task: WarehouseTask) -> None: ...

    async def pack(self, task: WarehouseTask) -> None: ...

    async def book_carrier(self, task: WarehouseTask) -> str:
        """Label the parcel and book collection; returns the label id."""
        ...

    async def await_collection(self, task: WarehouseTask) -> None:
        """Wait until the carrier is at the dock."""
        ...

    async def hand_over(self, task: WarehouseTask) -> str:
        """Give the parcel to the carrier; returns the tracking number."""
        ...

    async def release(self, task: WarehouseTask) -> None:
        """Put back whatever was picked for a cancelled allocation."""
        ...


@dataclass(frozen=True)
class StepDelays:
    pick: float = 2.0
    pack: float = 2.0
    carrier: float = 3.0


async def _work_for(seconds: float) -> None:
    """Take `seconds`, heartbeating so a dead worker is noticed within the heartbeat timeout."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if activity.in_activity():
            activity.heartbeat()
        await asyncio.sleep(min(left, 1.0))


class SimulatedWarehouse:
    """A warehouse whose state lives in our own database, so it survives restarts and
    tests can see exactly how many times each parcel was handed over."""

    def __init__(self, engine: AsyncEngine, delays: StepDelays) -> None:
        self._engine = engine
        self._delays = delays

    async def _stamp(self, task: WarehouseTask, column: str, **values: str) -> Any:
        """Set `column` (and `values`) the first time only, and return the task's state."""
        assignments = "".join(
            f", {name} = coalesce(t.{name}, EXCLUDED.{name})" for name in values
        )
        return await direct_one(
            self._engine,
            sa.text(
                f"""
                INSERT INTO sim_warehouse_tasks AS t
                    (allocation_id, {column}{"".join(", " + n for n in values)})
                VALUES (:id, now(){"".join(", :" + n for n in values)})
                ON CONFLICT (allocation_id) DO UPDATE
                SET {column} = coalesce(t.{column}, now()){assignments}
                RETURNING *
                """
            ),
            {"id": task.allocation_id, **values},
        )

    async def _done(self, task: WarehouseTask, column: str) -> bool:
        row = await direct_one(
            self._engine,
            sa.text(f"SELECT {column} FROM sim_warehouse_tasks WHERE allocation_id = :id"),
            {"id": task.allocation_id})
        return row is not None and row[0] is not None

    async def _step(self, task: WarehouseTask, column: str, seconds: float) -> None:
        if seconds > 0 and not await self._done(task, column):
            await _work_for(seconds)
        await self._stamp(task, column)

    async def pick(self, task: WarehouseTask) -> None:
        await self._step(task, "picked_at", self._delays.pick)

    async def pack(self, task: WarehouseTask) -> None:
        await self._step(task, "packed_at", self._delays.pack)

    async def book_carrier(self, task: WarehouseTask) -> str:
        label = "LBL-" + hashlib.sha1(task.allocation_id.bytes).hexdigest()[:12].upper()
        return (await self._stamp(task, "labelled_at", label=label)).label

    async def await_collection(self, task: WarehouseTask) -> None:
        if self._delays.carrier > 0 and not await self._done(task, "handed_over_at"):
            await _work_for(self._delays.carrier)

    async def hand_over(self, task: WarehouseTask) -> str:
        tracking = "SIM" + hashlib.sha1(b"track" + task.allocation_id.bytes).hexdigest()[:14].upper()
        row = await direct_one(
            self._engine,
            sa.text(
                """
                INSERT INTO sim_warehouse_tasks AS t
                    (allocation_id, handed_over_at, tracking_number, handovers)
                VALUES (:id, now(), :tracking, 1)
                ON CONFLICT (allocation_id) DO UPDATE
                SET handed_over_at = coalesce(t.handed_over_at, now()),
                    tracking_number = coalesce(t.tracking_number, EXCLUDED.tracking_number),
                    handovers = t.handovers
                                + CASE WHEN t.handed_over_at IS NULL THEN 1 ELSE 0 END
                RETURNING tracking_number
                """
            ),
            {"id": task.allocation_id, "tracking": tracking},
        )
        return row.tracking_number

    async def release(self, task: WarehouseTask) -> None:
        await self._stamp(task, "released_at")
