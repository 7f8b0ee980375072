"""The hand-off from PostgreSQL to the line workflows: a transactional outbox.

A change that a workflow must hear about (a line to start, units allocated, a cancel)
writes an outbox row in the same transaction. After commit the writer delivers its own
rows at once; the relay in every worker delivers whatever is left: rows the writer
handed to it (large receipts), and rows whose writer died before delivering. So a crash
between the commit and the signal delays a message but cannot lose it.

Delivery is at least once, and workflows ignore repeats. A message to a running line is a
plain signal; one that finds no line (its start not delivered yet) becomes a
signal-with-start, so it reaches the line either way. Signal first, because nearly every
line is running by the time stock arrives, and a signal-with-start costs the server and
the relay more (the line's whole input, read from the database, with every message).
Rows claimed with SKIP LOCKED are delivered by one deliverer at a time, across any
number of API and worker processes. A row that keeps failing backs off and, after
`outbox_max_attempts`, is marked dead for ops to inspect and replay."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from backorders import search_attributes as keys
from backorders.contracts import AllocationRef, CancelNotice, DelayNotice, EtaNotice, LineInput
from backorders.domain.lifecycle import AllocationStatus, line_status
from backorders.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "backorders_outbox"

START = "line.start"
ALLOCATED = "line.allocated"
CANCELLED = "line.cancelled"
DELAYED = "line.delayed"
EXPECTED = "line.expected"
RELEASE = "line.release"


def workflow_id_for(line_id: uuid.UUID | str) -> str:
    return f"line-{line_id}"


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    items: list[tuple[uuid.UUID, dict[str, Any]]],
    settings: Settings,
) -> list[int]:
    """Write messages for the writer to deliver after commit; the relay takes them only
    if the writer has not done so within the grace period."""
    if not items:
        return []
    rows = await conn.execute(
        sa.text(
            """
            INSERT INTO outbox (kind, line_id, payload, available_at)
            SELECT :kind, line_id, payload, now() + make_interval(secs => :grace)
            FROM unnest(CAST(:line_ids AS uuid[]), CAST(:payloads AS jsonb[]))
                 AS m(line_id, payload)
            RETURNING id
            """
        ),
        {
            "kind": kind,
            "line_ids": [line_id for line_id, _ in items],
            "payloads": [json.dumps(payload) for _, payload in items],
            "grace": settings.outbox_inline_grace_seconds,
        },
    )
    return [r[0] for r in rows]


async def wake_relay(conn: AsyncConnection) -> None:
    """Tell the relays there is work; delivered by PostgreSQL only if this commits."""
    await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


_LINE_INPUTS = sa.text(
    """
    SELECT l.id, l.order_id, o.order_number, o.channel, l.sku, o.customer_id,
           o.customer_tier, l.quantity, l.initial_backordered, l.workflow_id, l.promised_date,
           l.expected_date, l.no_supply, (o.ship_complete AND o.released_at IS NULL) AS held,
           a.id AS intake_id, a.quantity AS intake_quantity
    FROM order_lines l
    JOIN orders o ON o.id = l.order_id
    LEFT JOIN allocations a ON a.line_id = l.id AND a.source = 'stock'
    WHERE l.id = ANY(:ids)
    """
)


class OutboxDeliverer:
    def __init__(self, engine: AsyncEngine, client: Client, settings: Settings) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.outbox_concurrency)

    async def deliver(self, ids: list[int] | None = None) -> DeliveryReport:
        """Deliver the given rows (a writer's own), or any rows that are due (the relay)."""
        report = DeliveryReport()
        if ids is not None and not ids:
            return report
        async with self._engine.connect() as conn, conn.begin():
            if ids is None:
                where, params = "available_at <= now()", {"limit": self._settings.outbox_batch_size}
            else:
                where, params = "id = ANY(:ids)", {"ids": ids, "limit": len(ids)}
            rows = (
                await conn.execute(
                    sa.text(
                        f"""
                        SELECT id, kind, line_id, payload, attempts FROM outbox
                        WHERE delivered_at IS NULL AND dead_at IS NULL AND {where}
                        ORDER BY id LIMIT :limit
                        FOR UPDATE SKIP LOCKED
                        """
                    ),
                    params,
                )
            ).all()
            report.claimed = len(rows)
            if not rows:
                return report
            outcomes: list[str | None] = list(await asyncio.gather(
                *(self._signal(r.kind, r.line_id, r.payload) for r in rows)))
            to_start = [i for i, outcome in enumerate(outcomes) if outcome is _NO_LINE]
            if to_start:
                inputs = await self._line_inputs(conn, {rows[i].line_id for i in to_start})
                started = await asyncio.gather(*(
                    self._send(rows[i].kind, inputs[rows[i].line_id], rows[i].payload)
                    if rows[i].line_id in inputs else _no_such_line(rows[i].line_id)
                    for i in to_start))
                for i, outcome in zip(to_start, started, strict=True):
                    outcomes[i] = outcome
            delivered = [r.id for r, error in zip(rows, outcomes, strict=True) if error is None]
            if delivered:
                await conn.execute(
                    sa.text("UPDATE outbox SET delivered_at = now() WHERE id = ANY(:ids)"),
                    {"ids": delivered},
                )
            report.delivered = len(delivered)
            for row, error in zip(rows, outcomes, strict=True):
                if error is None:
                    continue
                attempts = row.attempts + 1
                dead = attempts >= self._settings.outbox_max_attempts
                await conn.execute(
                    sa.text(
                        """
                        UPDATE outbox SET attempts = :attempts, last_error = :error,
                               available_at = now() + make_interval(secs => :backoff),
                               dead_at = CASE WHEN :dead THEN now() END
                        WHERE id = :id
                        """
                    ),
                    {"id": row.id, "attempts": attempts, "error": error[:2000], "dead": dead,
                     "backoff": min(2.0**attempts, 300.0)},
                )
                report.failed += 1
                report.dead += int(dead)
                log.warning(
                    "outbox message %s (%s for line %s) failed, attempt %s%s: %s",
                    row.id, row.kind, row.line_id, attempts, " (now dead)" if dead else "", error,
                )
        return report

    async def _line_inputs(
        self, conn: AsyncConnection, line_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, LineInput]:
        rows = await conn.execute(_LINE_INPUTS, {"ids": list(line_ids)})
        inputs = {}
        for r in rows:
            intake = None
            if r.intake_id is not None:
                intake = AllocationRef(str(r.intake_id), r.intake_quantity, "stock")
            inputs[r.id] = LineInput(
                line_id=str(r.id),
                order_id=str(r.order_id),
                order_number=r.order_number,
                channel=r.channel,
                sku=r.sku,
                customer_id=r.customer_id,
                customer_tier=r.customer_tier,
                quantity=r.quantity,
                backordered_quantity=r.initial_backordered,
                intake_allocation=intake,
                history_limit=self._settings.line_history_limit,
                promised_date=r.promised_date.isoformat() if r.promised_date else None,
                expected_date=r.expected_date.isoformat() if r.expected_date else None,
                no_supply=r.no_supply,
                held=r.held,
                status_update_hours=self._settings.notify_status_update_hours,
                escalate_after_hours=self._settings.notify_escalate_after_hours,
                escalate_at_once=r.customer_tier in self._settings.notify_escalate_tiers,
            )
        return inputs

    async def _signal(self, kind: str, line_id: uuid.UUID, payload: dict[str, Any]) -> str | None:
        """Signal a running line: None when done, `_NO_LINE` when there is no line to
        signal (it needs a signal-with-start), else the error to record."""
        if kind == START:
            return _NO_LINE
        try:
            signal, args = _signal_of(kind, payload)
        except ValueError as exc:
            return str(exc)
        async with self._slots:
            try:
                await self._client.get_workflow_handle(workflow_id_for(line_id)).signal(
                    signal, *args, rpc_timeout=timedelta(seconds=10))
            except Exception as exc:
                if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                    return _NO_LINE  # not started yet, or already finished
                return f"{type(exc).__name__}: {exc}"
        return None

    async def _send(self, kind: str, line: LineInput, payload: dict[str, Any]) -> str | None:
        """Deliver one message as a signal-with-start; None when done, else the error."""
        from workflows.line import LineWorkflow

        signal: str | None = None
        args: list[Any] = []
        if kind != START:
            signal, args = _signal_of(kind, payload)
        async with self._slots:
            try:
                await self._client.start_workflow(
                    LineWorkflow.run,
                    line,
                    id=workflow_id_for(line.line_id),
                    task_queue=self._settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=initial_search_attributes(line),
                    start_signal=signal,
                    start_signal_args=args,
                    rpc_timeout=timedelta(seconds=10),
                )
            except WorkflowAlreadyStartedError:
                # A start that raced another delivery, or a message for a line whose
                # workflow has finished: either way there is nothing left to do.
                if signal is not None:
                    log.info("line %s already finished; %s not needed", line.line_id, kind)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
        return None


_NO_LINE = "no line to signal"


async def _no_such_line(line_id: uuid.UUID) -> str:
    """The outbox has no foreign key to lines (migration 0008): a message naming no line
    fails like any undeliverable one, and is dead-lettered for ops to see."""
    return f"no order line {line_id}"


def _signal_of(kind: str, payload: dict[str, Any]) -> tuple[str, list[Any]]:
    """The line workflow's signal and arguments for a message."""
    if kind == ALLOCATED:
        return "allocated", [AllocationRef(**payload)]
    if kind == CANCELLED:
        notice = dict(payload)
        notice["allocations"] = [AllocationRef(**a) for a in payload["allocations"]]
        return "cancel", [CancelNotice(**notice)]
    if kind == DELAYED:
        return "delayed", [DelayNotice(**payload)]
    if kind == EXPECTED:
        return "expected", [EtaNotice(**payload)]
    if kind == RELEASE:
        return "release", []
    raise ValueError(f"unknown outbox message kind {kind!r}")


def initial_search_attributes(line: LineInput) -> TypedSearchAttributes:
    in_progress = [AllocationStatus.ALLOCATED] if line.intake_allocation else []
    status = line_status(waiting=line.backordered_quantity, shipped=0, in_progress=in_progress)
    return TypedSearchAttributes(
        [
            SearchAttributePair(keys.SKU, line.sku),
            SearchAttributePair(keys.ORDER_NUMBER, line.order_number),
            SearchAttributePair(keys.CUSTOMER_ID, line.customer_id),
            SearchAttributePair(keys.CUSTOMER_TIER, line.customer_tier),
            SearchAttributePair(keys.BACKORDER_STATUS, status.value),
        ]
    )


class OutboxRelay:
    """Runs in every worker: delivers due rows, woken by NOTIFY or a poll timer."""

    def __init__(self, deliverer: OutboxDeliverer, settings: Settings) -> None:
        self._deliverer = deliverer
        self._settings = settings
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                try:
                    report = await self._deliverer.deliver()
                except Exception:
                    log.exception("outbox relay pass failed")
                    report = DeliveryReport()
                if report.claimed >= self._settings.outbox_batch_size:
                    continue
                self._wake.clear()
                waits = [asyncio.ensure_future(self._wake.wait()),
                         asyncio.ensure_future(stop.wait())]
                await asyncio.wait(
                    waits, timeout=self._settings.outbox_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for w in waits:
                    w.cancel()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.libpq_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox listener reconnecting: %s", exc)
                await asyncio.sleep(1.0)


# --- ops: see and replay what could not be delivered -------------------------------------

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


async def replay(engine: AsyncEngine, message_id: int, settings: Settings) -> bool:
    """Put a dead (or stuck) message back for the caller to deliver, with the relay as
    the fallback as for any writer; False if it was already delivered."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                sa.text(
                    """
                    UPDATE outbox SET dead_at = NULL, attempts = 0,
                           available_at = now() + make_interval(secs => :grace)
                    WHERE id = :id AND delivered_at IS NULL
                    RETURNING id
                    """
                ),
                {"id": message_id, "grace": settings.outbox_inline_grace_seconds},
            )
        ).one_or_none()
        return row is not None


async def get_message(engine: AsyncEngine, message_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(f"SELECT {_MESSAGE_COLUMNS} FROM outbox WHERE id = :id"),
                {"id": message_id},
            )
        ).mappings().one_or_none()
    return dict(row) if row is not None else None
