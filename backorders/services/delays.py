"""A supply delay on a waiting line, recorded and handed to its workflow like any other
change: through the outbox, so it is never lost."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import transaction
from backorders.services import lines, outbox
from backorders.services.errors import Conflict, NotFound
from backorders.settings import Settings


async def record_delay(engine: AsyncEngine, line_id: uuid.UUID, reason: str,
                       settings: Settings) -> tuple[str, list[int]]:
    async def work(conn: AsyncConnection) -> tuple[str, list[int]]:
        waiting = (await conn.execute(sa.text(
            "SELECT waiting_quantity FROM order_lines WHERE id = :id FOR UPDATE"),
            {"id": line_id})).scalar_one_or_none()
        if waiting is None:
            raise NotFound("unknown_line", f"no order line {line_id}", field="line_id")
        if waiting == 0:
            raise Conflict("not_waiting", f"line {line_id} is not waiting for stock",
                           field="line_id")
        event_id = str(uuid.uuid4())
        await lines.record(conn, [lines.Event(line_id, "delayed", reason, {"event_id": event_id})])
        ids = await outbox.enqueue(conn, outbox.DELAYED, [(line_id, {"event_id": event_id,
                                                                      "reason": reason})],
                                   settings)
        return event_id, ids

    return await transaction(engine, work)
