"""Delivering outbox messages to the line workflows, by the line contract's names.

After commit the writer delivers its own rows at once; the relay in every worker
delivers whatever is left: rows the writer handed to it (large receipts), and rows whose
writer died before delivering.

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
import dataclasses
import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from backorders import logs, tracing
from backorders.contracts import line as contract
from backorders.contracts.line import AllocationRef, LineInput
from backorders.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True)
class _Signal:
    name: str | None
    """None for a start message: the start is the whole delivery."""
    args: list[Any]


@functools.cache
def _adapter(payload_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(payload_type)


def signal_of(kind: str, payload: dict[str, Any]) -> _Signal:
    """The line workflow's signal and arguments for a stored message, read back into the
    contract's dataclass it was written from."""
    spec = contract.BY_KIND.get(kind)
    if spec is None:
        raise ValueError(f"unknown outbox message kind {kind!r}")
    message = _adapter(spec.payload).validate_python(payload)
    args = [message] if dataclasses.fields(spec.payload) else []
    return _Signal(spec.signal.value if spec.signal else None, args)


_LINE_INPUTS = sa.text(
    """
    SELECT l.id, l.order_id, o.order_number, o.channel, l.sku, o.customer_id,
           o.customer_tier, l.quantity, l.initial_backordered, l.workflow_id, l.promised_date,
           l.expected_date, l.no_supply, l.likely_date, l.latest_date,
           (o.ship_complete AND o.released_at IS NULL) AS held,
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
                        SELECT id, kind, line_id, payload, attempts, trace FROM outbox
                        WHERE delivered_at IS NULL AND dead_at IS NULL AND {where}
                        ORDER BY priority, id LIMIT :limit
                        FOR UPDATE SKIP LOCKED
                        """
                    ),
                    params,
                )
            ).all()
            report.claimed = len(rows)
            if not rows:
                return report
            decoded: list[_Signal | str] = []
            for r in rows:
                try:
                    decoded.append(_from_request(signal_of(r.kind, r.payload),
                                                 _request_id(r.trace)))
                except ValueError as exc:  # pydantic's ValidationError is one too
                    decoded.append(f"{type(exc).__name__}: {exc}")
            outcomes: list[str | None] = list(await asyncio.gather(
                *(self._signal(r, s) for r, s in zip(rows, decoded, strict=True))))
            to_start = [i for i, outcome in enumerate(outcomes) if outcome is _NO_LINE]
            if to_start:
                inputs = await self._line_inputs(conn, {rows[i].line_id for i in to_start})
                started = await asyncio.gather(*(
                    self._start(inputs[rows[i].line_id], decoded[i],  # type: ignore[arg-type]
                                rows[i].trace)
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
                with logs.bind(request_id=_request_id(row.trace), line_id=row.line_id):
                    log.warning(
                        "outbox message %s (%s for line %s) failed, attempt %s%s: %s", row.id,
                        row.kind, row.line_id, attempts, " (now dead)" if dead else "", error)
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
                likely_date=r.likely_date.isoformat() if r.likely_date else None,
                latest_date=r.latest_date.isoformat() if r.latest_date else None,
                status_update_hours=self._settings.notify_status_update_hours,
                escalate_after_hours=self._settings.notify_escalate_after_hours,
                escalate_at_once=r.customer_tier in self._settings.notify_escalate_tiers,
            )
        return inputs

    async def _signal(self, row: Any, signal: _Signal | str) -> str | None:
        """Signal a running line: None when done, `_NO_LINE` when there is no line to
        signal (it needs a signal-with-start), else the error to record."""
        if isinstance(signal, str):
            return signal
        if signal.name is None:
            return _NO_LINE
        line_id = row.line_id
        async with self._slots:
            with tracing.continued(f"deliver {row.kind}", row.trace, {"line_id": str(line_id)}), \
                    logs.bind(request_id=_request_id(row.trace), line_id=line_id):
                try:
                    await self._client.get_workflow_handle(contract.workflow_id(line_id)).signal(
                        signal.name, *signal.args, rpc_timeout=timedelta(seconds=10))
                except Exception as exc:
                    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                        return _NO_LINE  # not started yet, or already finished
                    return f"{type(exc).__name__}: {exc}"
        return None

    async def _start(self, line: LineInput, signal: _Signal,
                     trace: dict[str, str] | None = None) -> str | None:
        """Deliver one message as a signal-with-start; None when done, else the error."""
        # A start message was written by the request that placed the order; another
        # message that finds no line (its start still pending) came from some later one.
        request_id = _request_id(trace) if signal.name is None else None
        if request_id is not None:
            line = dataclasses.replace(line, request_id=request_id, intake_allocation=(
                line.intake_allocation and dataclasses.replace(line.intake_allocation,
                                                               request_id=request_id)))
        async with self._slots:
            with tracing.continued("deliver line.start", trace, {"line_id": line.line_id}), \
                    logs.bind(request_id=request_id, line_id=line.line_id):
                try:
                    await self._client.start_workflow(
                        contract.WORKFLOW_TYPE,
                        line,
                        id=contract.workflow_id(line.line_id),
                        task_queue=self._settings.task_queue,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        search_attributes=contract.start_search_attributes(line),
                        start_signal=signal.name,
                        start_signal_args=signal.args,
                        rpc_timeout=timedelta(seconds=10),
                    )
                except WorkflowAlreadyStartedError:
                    # A start that raced another delivery, or a message for a line whose
                    # workflow has finished: either way there is nothing left to do.
                    if signal.name is not None:
                        log.info("line %s already finished; %s not needed", line.line_id,
                                 signal.name)
                except Exception as exc:
                    return f"{type(exc).__name__}: {exc}"
        return None


_NO_LINE = "no line to signal"


def _request_id(context: dict[str, str] | None) -> str | None:
    """The request id an outbox row keeps of its writer, if it had one."""
    return (context or {}).get(logs.REQUEST_ID_KEY)


def _from_request(signal: _Signal, request_id: str | None) -> _Signal:
    """The message's payload, told which request wrote it (payloads that carry one)."""
    if request_id is None:
        return signal
    return _Signal(signal.name, [
        dataclasses.replace(arg, request_id=request_id)
        if dataclasses.is_dataclass(arg) and hasattr(arg, "request_id") else arg
        for arg in signal.args])


async def _no_such_line(line_id: uuid.UUID) -> str:
    """The outbox has no foreign key to lines (migration 0008): a message naming no line
    fails like any undeliverable one, and is dead-lettered for ops to see."""
    return f"no order line {line_id}"
