"""Keeping each line's stored status and timeline true after a change.

Every caller holds the line's row lock, so reading its allocations here sees a stable
picture. The status rule itself lives in `backorders.domain.lifecycle`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backorders.domain.lifecycle import IN_PROGRESS, line_status

_IN_PROGRESS = [s.value for s in IN_PROGRESS]


async def refresh_status(conn: AsyncConnection, line_ids: Iterable[uuid.UUID]) -> None:
    ids = list(set(line_ids))
    if not ids:
        return
    rows = await conn.execute(
        sa.text(
            """
            SELECT l.id, l.status, l.waiting_quantity, l.shipped_quantity,
                   coalesce(array_agg(a.status) FILTER (WHERE a.status = ANY(:steps)), '{}')
            FROM order_lines l LEFT JOIN allocations a ON a.line_id = l.id
            WHERE l.id = ANY(:ids)
            GROUP BY l.id
            """
        ),
        {"ids": ids, "steps": _IN_PROGRESS},
    )
    changed_ids: list[uuid.UUID] = []
    changed_statuses: list[str] = []
    for line_id, current, waiting, shipped, steps in rows:
        status = line_status(waiting=waiting, shipped=shipped, in_progress=steps).value
        if status != current:
            changed_ids.append(line_id)
            changed_statuses.append(status)
    if changed_ids:
        await conn.execute(
            sa.text(
                """
                UPDATE order_lines l SET status = c.status, updated_at = now()
                FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[])) AS c(id, status)
                WHERE l.id = c.id
                """
            ),
            {"ids": changed_ids, "statuses": changed_statuses},
        )


@dataclass
class Event:
    line_id: uuid.UUID
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


async def record(conn: AsyncConnection, events: Sequence[Event]) -> None:
    if not events:
        return
    await conn.execute(
        sa.text(
            """
            INSERT INTO line_events (line_id, kind, message, data)
            SELECT * FROM unnest(CAST(:line_ids AS uuid[]), CAST(:kinds AS text[]),
                                 CAST(:messages AS text[]), CAST(:data AS jsonb[]))
            """
        ),
        {
            "line_ids": [e.line_id for e in events],
            "kinds": [e.kind for e in events],
            "messages": [e.message for e in events],
            "data": [json.dumps(e.data, default=str) for e in events],
        },
    )
