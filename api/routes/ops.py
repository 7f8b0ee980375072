"""What ops need when a hand-off to a workflow keeps failing: see it, fix the cause,
replay it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.access import AuditDep
from api.deps import ServicesDep
from backorders.schemas import AuditPage, Timestamp
from backorders.services import audit as audit_trail
from backorders.services import outbox_ops

router = APIRouter(prefix="/ops", tags=["operations"])


class OutboxMessage(BaseModel):
    id: int
    kind: str
    line_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime
    available_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    attempts: int
    last_error: str | None


class OutboxPage(BaseModel):
    items: list[OutboxMessage]
    total: int


@router.get("/outbox", response_model=OutboxPage)
async def list_outbox(
    services: ServicesDep,
    state: Annotated[Literal["pending", "dead", "delivered"], Query()] = "dead",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> OutboxPage:
    """Messages to line workflows: `dead` ones gave up after repeated failures."""
    items, total = await outbox_ops.list_messages(services.engine, state=state, limit=limit,
                                                  offset=offset)
    return OutboxPage(items=[OutboxMessage(**i) for i in items], total=total)


@router.post("/outbox/{message_id}/replay", response_model=OutboxMessage)
async def replay_outbox(
    message_id: Annotated[int, Path(ge=1)], services: ServicesDep, audit: AuditDep
) -> OutboxMessage:
    """Deliver a dead message again (workflows ignore repeats, so this is always safe)."""
    await outbox_ops.replay(services.engine, message_id, services.settings, audit=audit)
    await services.hand_off([message_id])
    message = await outbox_ops.get_message(services.engine, message_id)
    assert message is not None
    return OutboxMessage(**message)


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    services: ServicesDep,
    key_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{12}$")] = None,
    resource: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    since: Annotated[Timestamp | None, Query(
        description="Only entries at or after this time (ISO 8601 with an offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Every write, newest first: who (key id and name), what (method, path, resource),
    when, and how it ended (accepted, rejected with its status, or failed)."""
    return await audit_trail.list_entries(services.engine, key_id=key_id, resource=resource,
                                          since=since, limit=limit)
