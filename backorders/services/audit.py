"""The audit trail: every write, who made it and how it ended.

An accepted change records itself inside its own transaction (`unit_of_work.run` does
it), so an audited change and its record commit or roll back together. A refused or
failed request changed nothing; the API records it afterwards with its status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.domain.access import Caller
from backorders.models import AuditEntry
from backorders.schemas import AuditEntryOut, AuditPage

Outcome = Literal["accepted", "rejected", "failed"]


@dataclass
class Audit:
    """One write about to happen. The service fills in the resource when only it knows
    it (a new order's id) and a detail ("created", "replayed")."""

    caller: Caller
    method: str
    path: str
    resource: str | None = None
    detail: str | None = None
    recorded: bool = False
    """Set once the accepted change and its row have committed."""

    def about(self, resource: object, detail: str | None = None) -> None:
        self.resource = str(resource)
        if detail is not None:
            self.detail = detail


async def record(conn: AsyncConnection, audit: Audit, outcome: Outcome, *,
                 status: int | None = None, detail: str | None = None) -> None:
    caller = audit.caller
    await conn.execute(sa.insert(AuditEntry).values(
        key_id=caller.key_id, actor=caller.name, role=caller.role.value if caller.role else None,
        method=audit.method, path=audit.path, resource=audit.resource, outcome=outcome,
        status=status, detail=detail if detail is not None else audit.detail))


async def record_refusal(engine: AsyncEngine, audit: Audit, status: int, detail: str | None) -> None:
    """A write that was refused (4xx) or failed (5xx): nothing changed, so its row gets
    a transaction of its own. (A completed write lands here only when its route failed
    to audit it in its transaction; it is then recorded as accepted, and flagged.)"""
    outcome = "accepted" if status < 400 else "rejected" if status < 500 else "failed"
    async with engine.begin() as conn:
        await record(conn, audit, outcome, status=status, detail=detail)


async def list_entries(engine: AsyncEngine, *, key_id: str | None = None,
                       resource: str | None = None, since: datetime | None = None,
                       limit: int = 100) -> AuditPage:
    query = (sa.select(*AuditEntry.__table__.c)
             .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    if key_id is not None:
        query = query.where(AuditEntry.key_id == key_id)
    if resource is not None:
        query = query.where(AuditEntry.resource == resource)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return AuditPage(items=[AuditEntryOut.model_validate(r, from_attributes=True) for r in rows])
