"""Writing hand-offs to the line workflows: a transactional outbox.

A change that a workflow must hear about (a line to start, units allocated, a cancel)
is written here as one of the line contract's messages, in the same transaction as the
change. Delivery (`handoff/`) happens after commit, so a crash between the commit and
the signal delays a message but cannot lose it."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backorders import logs, tracing
from backorders.contracts.line import BY_PAYLOAD, LineMessage
from backorders.settings import Settings

CHANNEL = "backorders_outbox"
"""The NOTIFY channel that wakes the relays."""


def kind_of(payload_type: type) -> str:
    return BY_PAYLOAD[payload_type].kind


def sql_payload(payload_type: type, **columns: str) -> str:
    """A `jsonb_build_object(...)` of one contract message, for statements that write
    outbox rows themselves: one SQL expression per dataclass field, checked against the
    contract so the SQL cannot drift from what the relay reads back."""
    fields = [f.name for f in dataclasses.fields(payload_type)]
    if sorted(fields) != sorted(columns):
        raise TypeError(f"{payload_type.__name__} has fields {fields}, SQL gives {sorted(columns)}")
    return "jsonb_build_object(" + ", ".join(f"'{name}', {columns[name]}" for name in fields) + ")"


async def enqueue(
    conn: AsyncConnection,
    messages: Sequence[tuple[uuid.UUID, LineMessage]],
    settings: Settings,
    *,
    grace: float | None = None,
    priority: int = 0,
) -> list[int]:
    """Write messages for the writer to deliver after commit; the relay takes them only
    if the writer has not done so within the grace period (`grace`, 0 for messages left
    to the relay from the start), lowest `priority` first, then oldest."""
    if not messages:
        return []
    rows = await conn.execute(
        sa.text(
            """
            INSERT INTO outbox (kind, line_id, payload, available_at, priority, trace)
            SELECT kind, line_id, payload, now() + make_interval(secs => :grace), :priority,
                   CAST(:trace AS jsonb)
            FROM unnest(CAST(:kinds AS text[]), CAST(:line_ids AS uuid[]),
                        CAST(:payloads AS jsonb[])) AS m(kind, line_id, payload)
            RETURNING id
            """
        ),
        {
            "kinds": [kind_of(type(message)) for _, message in messages],
            "line_ids": [line_id for line_id, _ in messages],
            "payloads": [json.dumps(dataclasses.asdict(message)) for _, message in messages],
            "grace": settings.outbox_inline_grace_seconds if grace is None else grace,
            "priority": priority,
            "trace": trace_context(),
        },
    )
    return [r[0] for r in rows]


def trace_context() -> str | None:
    """The `trace` column's value: the writer's context, its W3C trace headers (when
    tracing is on) and its request id."""
    found = dict(tracing.carrier() or {})
    request_id = logs.current().get("request_id")
    if request_id:
        found[logs.REQUEST_ID_KEY] = request_id
    return json.dumps(found) if found else None


async def wake_relay(conn: AsyncConnection) -> None:
    """Tell the relays there is work; delivered by PostgreSQL only if this commits."""
    await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
