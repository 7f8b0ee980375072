"""A supply delay on a waiting line, recorded and handed to its workflow like any other
change: through the outbox, so it is never lost."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.contracts.line import DelayNotice
from backorders.services import lines, unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, unknown_line
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.settings import Settings


async def record_delay(engine: AsyncEngine, line_id: uuid.UUID, reason: str,
                       settings: Settings, *, hand_off: HandOff | None = None,
                       audit: Audit | None = None) -> str:
    """Returns the delay's event id."""

    async def work(uow: UnitOfWork) -> str:
        conn = uow.conn
        waiting = (await conn.execute(sa.text(
            "SELECT waiting_quantity FROM order_lines WHERE id = :id FOR UPDATE"),
            {"id": line_id})).scalar_one_or_none()
        if waiting is None:
            raise unknown_line(line_id)
        if waiting == 0:
            raise Conflict("not_waiting", f"line {line_id} is not waiting for stock",
                           field="line_id")
        event_id = str(uuid.uuid4())
        await lines.record(conn, [lines.Event(line_id, "delayed", reason, {"event_id": event_id})])
        await uow.send([(line_id, DelayNotice(event_id=event_id, reason=reason))])
        return event_id

    return await unit_of_work.run(engine, settings, work, hand_off, audit=audit)
