"""The business gauges the API's /metrics reads from the ledger at scrape time: what is
waiting (in total and for the SKUs with most units waiting, so the label set stays
bounded), what waits to reach the workflows, what is parked dead, and the notifications
of the last day by channel and status. One round trip; a scrape every few seconds from
several scrapers is absorbed by a short cache per process (`METRICS_CACHE_SECONDS`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.contracts.line import BY_PAYLOAD, StartLine
from backorders.db import autocommit

_START_KIND = BY_PAYLOAD[StartLine].kind

BACKLOG = """
        (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL)
            AS outbox_pending,
        (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM outbox
         WHERE delivered_at IS NULL AND dead_at IS NULL) AS outbox_oldest_seconds,
        (SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL) AS outbox_dead,
        (SELECT count(*) FROM intakes WHERE state = 'dead') AS intake_dead"""
"""What waits to reach the workflows (and how old the oldest is) and what gave up, as
columns: for /health and the gauges alike."""

_BACKLOG = sa.text(f"SELECT {BACKLOG}")

_GAUGES = sa.text(
    f"""
    WITH waiting AS (
        SELECT sku, sum(waiting_quantity) AS units, count(*) AS lines
        FROM order_lines WHERE waiting_quantity > 0 GROUP BY sku
    )
    SELECT
        (SELECT coalesce(sum(units), 0) FROM waiting) AS waiting_units,
        (SELECT coalesce(sum(lines), 0) FROM waiting) AS waiting_lines,
        (SELECT coalesce(json_agg(t), '[]') FROM (
            SELECT sku, units, lines FROM waiting ORDER BY units DESC, sku LIMIT :top) t
        ) AS top,
        {BACKLOG},
        (SELECT count(*) FROM outbox
         WHERE delivered_at IS NULL AND dead_at IS NULL AND kind = :start) AS intake_backlog,
        (SELECT coalesce(json_agg(n), '[]') FROM (
            SELECT coalesce(channel, 'none') AS channel, status, count(*) AS count
            FROM notifications WHERE created_at > now() - interval '24 hours'
            GROUP BY 1, 2) n
        ) AS notifications
    """
)


@dataclass(frozen=True)
class SkuWaiting:
    sku: str
    units: int
    lines: int


@dataclass(frozen=True)
class Gauges:
    waiting_units: int
    waiting_lines: int
    top_skus: list[SkuWaiting]
    outbox_pending: int
    outbox_oldest_pending_seconds: float
    outbox_dead: int
    intake_backlog: int
    """Line workflow starts waiting for the relays (a burst's backlog)."""
    intake_dead: int
    notifications: dict[tuple[str, str], int] = field(default_factory=dict)
    """Created in the last 24 hours, by (channel, status)."""


@dataclass(frozen=True)
class Backlog:
    outbox_pending: int
    outbox_oldest_pending_seconds: float
    outbox_dead: int
    intake_dead: int


async def backlog(engine: AsyncEngine) -> Backlog:
    async with autocommit(engine).connect() as conn:
        row = (await conn.execute(_BACKLOG)).one()
    return Backlog(int(row.outbox_pending), float(row.outbox_oldest_seconds),
                   int(row.outbox_dead), int(row.intake_dead))


async def read(engine: AsyncEngine, top: int) -> Gauges:
    async with autocommit(engine).connect() as conn:
        row = (await conn.execute(_GAUGES, {"top": top, "start": _START_KIND})).one()
    return Gauges(
        waiting_units=int(row.waiting_units), waiting_lines=int(row.waiting_lines),
        top_skus=[SkuWaiting(t["sku"], int(t["units"]), int(t["lines"])) for t in row.top],
        outbox_pending=int(row.outbox_pending),
        outbox_oldest_pending_seconds=round(float(row.outbox_oldest_seconds), 3),
        outbox_dead=int(row.outbox_dead), intake_backlog=int(row.intake_backlog),
        intake_dead=int(row.intake_dead),
        notifications={(n["channel"], n["status"]): int(n["count"]) for n in row.notifications})


class Cached:
    """`read`, at most once per `seconds` in this process."""

    def __init__(self, engine: AsyncEngine, top: int, seconds: float) -> None:
        self._engine, self._top, self._seconds = engine, top, seconds
        self._value: Gauges | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Gauges:
        async with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._seconds:
                self._value = await read(self._engine, self._top)
                self._at = time.monotonic()
            return self._value
