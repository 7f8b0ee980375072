"""The worker process: runs the line workflows and their activities, and relays the
outbox to them. Start as many as you like; they share the work.

`python worker.py check-replay` is the deploy check for workflow code: it replays the
recent and still-running histories on the server against this code, and fails when any
would no longer replay (a change that needs `workflow.patched`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Replayer, Worker

from activities.dispatch import DispatchActivities
from activities.forecast import ForecastActivities
from activities.notify import NotifyActivities
from activities.warehouse import SimulatedWarehouse, StepDelays, Warehouse
from backorders import logs, metrics, runtime, tracing
from backorders.db import create_engine, dispose
from backorders.forecasting import runner as forecast_runner
from backorders.notify import templates
from backorders.notify.service import Notifier, relay_staff_alerts
from backorders.schedules import ensure_forecast_schedule
from backorders.services import intake
from backorders.settings import DefaultSecret, Settings, get_settings
from backorders.temporal import DATA_CONVERTER, connect, ensure_search_attributes
from handoff.deliver import OutboxDeliverer
from handoff.relay import OutboxRelay
from workflows.digest import DigestWorkflow
from workflows.forecast import ForecastWorkflow
from workflows.line import LineWorkflow

log = logging.getLogger("backorders.worker")


def simulated_warehouse(engine: AsyncEngine, settings: Settings) -> SimulatedWarehouse:
    return SimulatedWarehouse(
        engine,
        StepDelays(
            pick=settings.warehouse_pick_seconds,
            pack=settings.warehouse_pack_seconds,
            carrier=settings.warehouse_carrier_seconds,
        ),
    )


def worker_options(settings: Settings) -> dict[str, Any]:
    """Tuning shared by every worker, including the benchmark's bare-workflow ceiling."""
    return {
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "max_cached_workflows": settings.worker_max_cached_workflows,
        "sticky_queue_schedule_to_start_timeout": timedelta(
            seconds=settings.worker_sticky_queue_timeout_seconds),
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(
            settings.worker_max_workflow_task_polls),
    }


WORKFLOWS = [LineWorkflow, DigestWorkflow, ForecastWorkflow]
"""Every workflow a worker runs, and so every one a deploy must still replay."""


def build_worker(
    client: Client, engine: AsyncEngine, settings: Settings, warehouse: Warehouse,
    notifier: Notifier | None = None,
) -> Worker:
    runtime.skip_idle_payload_passes()
    dispatch = DispatchActivities(engine, warehouse)
    notify = NotifyActivities(notifier or Notifier(engine, settings), client, settings.task_queue)
    forecasting = ForecastActivities(engine, settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[*dispatch.all(), *notify.all(), *forecasting.all()],
        interceptors=[logs.ActivityIds()],
        **worker_options(settings),
    )


async def run(settings: Settings, stop: asyncio.Event) -> None:
    templates.check_all()  # a broken template stops the worker before it takes any work
    async with AsyncExitStack() as stack:
        engine = create_engine(settings, "worker")
        stack.push_async_callback(dispose, engine)
        telemetry = metrics.worker_runtime(settings.worker_metrics_address) \
            if settings.worker_metrics_address else None
        client = await connect(settings, attempts=60, runtime=telemetry)
        await ensure_search_attributes(client, settings.temporal_namespace)
        await ensure_forecast_schedule(client, settings)
        stack.callback(forecast_runner.shutdown)
        notifier = Notifier(engine, settings)
        worker = build_worker(client, engine, settings, simulated_warehouse(engine, settings),
                              notifier)
        relay = OutboxRelay(OutboxDeliverer(engine, client, settings), settings)
        log.info("worker polling task queue %r on %s%s", settings.task_queue,
                 settings.temporal_address,
                 f"; metrics on http://{settings.worker_metrics_address}/metrics"
                 if telemetry is not None else "")
        runtime.tune_gc()
        async with worker:
            relay_task = asyncio.create_task(relay.run(stop))
            alerts_task = asyncio.create_task(
                relay_staff_alerts(notifier, stop, settings.outbox_poll_seconds))
            retries_task = asyncio.create_task(intake.retry_forever(engine, settings, stop))
            await stop.wait()
            log.info("worker stopping")
            await relay_task
            await alerts_task
            await retries_task


@dataclass
class ReplayReport:
    replayed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(workflow id, why) for each history this code no longer replays."""
    truncated: bool = False
    """`limit` was reached: some histories were not replayed."""


async def check_replay(client: Client, *, since: timedelta, limit: int,
                       workflows: Sequence[type] = WORKFLOWS) -> ReplayReport:
    """Replay on this code every workflow still running (they are the ones a deploy can
    break; lines wait for weeks), then those closed that started within `since` (a
    query or reset replays them too), `limit` histories at most."""
    started = (datetime.now(UTC) - since).strftime("%Y-%m-%dT%H:%M:%SZ")
    types = " OR ".join(f"WorkflowType = '{w.__temporal_workflow_definition.name}'"  # type: ignore[attr-defined]
                        for w in workflows)
    replayer = Replayer(workflows=list(workflows), data_converter=DATA_CONVERTER)
    report = ReplayReport()
    for which in ("ExecutionStatus = 'Running'",
                  f"ExecutionStatus != 'Running' AND StartTime > '{started}'"):
        left = limit - report.replayed
        if left <= 0:
            report.truncated = True
            break
        histories = client.list_workflows(f"({types}) AND {which}", limit=left).map_histories()
        async with replayer.workflow_replay_iterator(histories) as results:
            async for result in results:
                report.replayed += 1
                if result.replay_failure is not None:
                    report.failed.append((result.history.workflow_id,
                                          f"{type(result.replay_failure).__name__}: "
                                          f"{result.replay_failure}"))
    report.truncated = report.truncated or report.replayed >= limit
    return report


def _check_replay_command(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python worker.py check-replay",
        description="Replay recent and running workflow histories from the server on this "
                    "code before it rolls out; exit 1 if any would break.")
    parser.add_argument("--since-hours", type=float, default=72.0,
                        help="also replay workflows started this recently (default 72)")
    parser.add_argument("--limit", type=int, default=1000,
                        help="replay at most this many histories (default 1000)")
    args = parser.parse_args(argv)

    async def run_check() -> ReplayReport:
        client = await connect(settings, attempts=10)
        return await check_replay(client, since=timedelta(hours=args.since_hours),
                                  limit=args.limit)

    report = asyncio.run(run_check())
    for workflow_id, why in report.failed:
        print(f"FAILS  {workflow_id}: {why}")
    if report.truncated:
        print(f"warning: stopped at --limit {args.limit}; running workflows were replayed "
              "first, but not every history was checked")
    print(f"replayed {report.replayed} history(ies) from {settings.temporal_address} "
          f"({settings.temporal_namespace}): {len(report.failed)} would break on this code")
    return 1 if report.failed else 0


def main() -> None:
    settings = get_settings()
    if sys.argv[1:2] == ["check-replay"]:
        logs.setup("WARNING", settings.log_format)
        sys.exit(_check_replay_command(settings, sys.argv[2:]))
    logs.setup(settings.log_level, settings.log_format)
    try:
        settings.check_secrets()
    except DefaultSecret as exc:
        raise SystemExit(f"worker: {exc}") from None
    tracing.setup(settings, "backorders-worker")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())
    # Stopped cleanly: leave now. The SDK's runtime and clients were frozen out of the
    # collector's sight (`runtime.tune_gc`), so they would be dropped only in the
    # interpreter's teardown, where their native threads abort the process.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
