"""Whether the database's schema is the one this code needs (for readiness probes)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders import migrate


async def revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(migrate.CURRENT))).scalar()


def verdict(current: str | None) -> str:
    """"ok", or what is wrong and how to mend it."""
    if not migrate.behind(current):
        return "ok"
    return f"at {current}, expected {migrate.head()}: run `alembic upgrade head`"
