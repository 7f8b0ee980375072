"""Ops on the outbox: see what is pending, delivered or dead, and replay what could not
be delivered."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.services import unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, NotFound
from backorders.services.unit_of_work import UnitOfWork
from backorders.settings import Settings

_MESSAGE_COLUMNS = (
    "id, kind, line_id, payload, created_at, available_at, delivered_at, dead_at, attempts, "
    "last_error"
)


async def list_messages(
    engine: AsyncEngine, *, state: str, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    where = {
        "pending": "delivered_at IS NULL AND dead_at IS NULL",
        "dead": "dead_at IS NOT NULL",
        "delivered": "delivered_at IS NOT NULL",
    }[state]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    f"""
                    SELECT {_MESSAGE_COLUMNS}, count(*) OVER () AS total
                    FROM outbox WHERE {where} ORDER BY id LIMIT :limit OFFSET :offset
                    """
                ),
                {"limit": limit, "offset": offset},
            )
        ).mappings().all()
    total = rows[0]["total"] if rows else 0
    return [{k: v for k, v in r.items() if k != "total"} for r in rows], total


async def replay(engine: AsyncEngine, message_id: int, settings: Settings, *,
                 audit: Audit | None = None) -> None:
    """Put a dead (or stuck) message back for the caller to deliver, with the relay as
    the fallback as for any writer. A delivered message is not sent again."""
    if audit is not None:
        audit.about(message_id)

    async def work(uow: UnitOfWork) -> None:
        state = (await uow.conn.execute(
            sa.text(
                """
                UPDATE outbox SET dead_at = NULL, attempts = 0,
                       available_at = now() + make_interval(secs => :grace)
                WHERE id = :id AND delivered_at IS NULL
                RETURNING id
                """
            ),
            {"id": message_id, "grace": settings.outbox_inline_grace_seconds},
        )).one_or_none()
        if state is not None:
            return
        if await uow.conn.scalar(sa.text("SELECT 1 FROM outbox WHERE id = :id"), {"id": message_id}):
            raise Conflict("already_delivered", f"message {message_id} was already delivered",
                           field="message_id")
        raise NotFound("unknown_message", f"no outbox message {message_id}", field="message_id")

    await unit_of_work.run(engine, settings, work, audit=audit)


async def get_message(engine: AsyncEngine, message_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(f"SELECT {_MESSAGE_COLUMNS} FROM outbox WHERE id = :id"),
                {"id": message_id},
            )
        ).mappings().one_or_none()
    return dict(row) if row is not None else None
