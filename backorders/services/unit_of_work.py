"""One write transaction and what it will hand off to the line workflows.

Every write runs in `run`: the work gets a `UnitOfWork` holding the transaction's
connection and collecting the outbox rows it writes. After commit, the rows are handed
to `hand_off` (the API delivers them at once); a writer without one, or whose hand-off
fails, leaves them to the relay after the grace period. A retried transaction starts
with a fresh unit of work, so nothing a rolled-back attempt wrote is handed off.

A write made for a caller carries its `Audit`: the audit row is written in the same
transaction, after the work, so the change and its record never disagree."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders import metrics
from backorders.contracts.line import LineMessage
from backorders.db import transaction
from backorders.services import audit as audit_trail
from backorders.services import outbox
from backorders.services.audit import Audit
from backorders.settings import Settings

T = TypeVar("T")

HandOff = Callable[[list[int]], Awaitable[Any]]
"""Delivers a committed transaction's outbox rows."""


async def TO_RELAY(outbox_ids: list[int]) -> None:
    """The hand-off that leaves everything to the relays at once: under a burst the
    writer answers at the speed of PostgreSQL instead of waiting on workflow starts."""


@dataclass
class UnitOfWork:
    conn: AsyncConnection
    settings: Settings
    outbox_ids: list[int] = field(default_factory=list)
    """Rows to deliver right after commit."""
    relay_woken: bool = False
    audit: Audit | None = None
    to_relay: bool = False
    """Every message goes to the relays, none is delivered by the writer (`TO_RELAY`)."""
    allocated: bool = False
    """Free units were handed to waiting lines: the transaction's duration is measured
    (`backorders_allocation_seconds`)."""

    async def send(self, messages: Sequence[tuple[Any, LineMessage]], *,
                   priority: int = 0) -> None:
        """Write messages to lines, for delivery after commit (by the relays, lowest
        `priority` first, when the writer leaves them)."""
        if self.to_relay and messages:
            await outbox.enqueue(self.conn, messages, self.settings, grace=0,
                                 priority=priority)
            await self.leave_to_relay()
            return
        self.outbox_ids += await outbox.enqueue(self.conn, messages, self.settings,
                                                priority=priority)

    def sent(self, outbox_ids: Sequence[int]) -> None:
        """Rows a statement of its own wrote, for delivery after commit."""
        self.outbox_ids += outbox_ids

    async def leave_to_relay(self) -> None:
        """Rows a statement wrote too many of to deliver inline: the relays take them
        as soon as this commits."""
        if not self.relay_woken:
            await outbox.wake_relay(self.conn)
            self.relay_woken = True


async def run(engine: AsyncEngine, settings: Settings,
              work: Callable[[UnitOfWork], Awaitable[T]],
              hand_off: HandOff | None = None, *, audit: Audit | None = None) -> T:
    """Run `work` in one transaction (retried from the start on lock conflicts) with its
    audit row, then hand off what it wrote."""
    attempt: list[UnitOfWork] = []

    async def in_transaction(conn: AsyncConnection) -> T:
        uow = UnitOfWork(conn, settings, audit=audit, to_relay=hand_off is TO_RELAY)
        attempt[:] = [uow]
        result = await work(uow)
        if uow.audit is not None:
            await audit_trail.record(conn, uow.audit, "accepted")
        return result

    started = time.perf_counter()
    result = await transaction(engine, in_transaction)
    if attempt and attempt[0].allocated:
        metrics.recorder().allocation(time.perf_counter() - started)
    if audit is not None:
        audit.recorded = True
    if hand_off is not None:
        await hand_off(attempt[0].outbox_ids if attempt else [])
    return result
