"""The message log as ops and analytics read it: what was sent, queued, suppressed (and
why) or failed. The rows live in `notify.store`; this pages them as the API's schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.notify import store
from backorders.notify.store import NotificationQuery
from backorders.schemas import NotificationOut, NotificationPage

__all__ = ["NotificationQuery", "list_notifications"]


async def list_notifications(engine: AsyncEngine, query: NotificationQuery) -> NotificationPage:
    rows, total = await store.list_notifications(engine, query)
    return NotificationPage(
        items=[NotificationOut.model_validate(r._mapping) for r in rows],
        total=total, limit=query.limit, offset=query.offset)
