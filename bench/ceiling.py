"""The ceiling: a bare workflow shaped like one line's life with no database, on the same
server and the same worker settings: a "backordered" message, then the hand-off signal,
then the "allocated" message beside pick, pack, label and ship, then the "dispatched"
message, each an activity with the line's own timeouts and retry policies: Temporal keeps
a timer for each (the steps' heartbeat timeouts fire within seconds), and a shorter
timeout here would fire in the next scenario's timed phase instead of this one's. Run as
a process: `python -m bench.ceiling`.

With `visible`, it also carries what a line shows ops in the Temporal UI: started with
the line's five search attributes, it moves BackorderStatus to allocated and dispatched
where the line does. Every change rewrites the workflow's visibility record, so this
second ceiling measures what that costs the server (the bare one is the goal's)."""

from __future__ import annotations

import asyncio
import signal

from temporalio import activity, workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from backorders import search_attributes as keys

with workflow.unsafe.imports_passed_through():
    from workflows.line import (
        DISPATCH_RETRY,
        HEARTBEAT_TIMEOUT,
        NOTIFY_OPTIONS,
        STEP_TIMEOUT,
    )

STEPS = ("pick", "pack", "label", "ship")


@activity.defn(name="bench_step")
async def bench_step(step: str) -> str:
    return step


@workflow.defn(name="BenchBareLine")
class BareLine:
    def __init__(self) -> None:
        self._allocated = False

    @workflow.run
    async def run(self, visible: bool = False) -> int:
        await self._message("backordered message")
        await workflow.wait_condition(lambda: self._allocated)
        if visible:
            workflow.upsert_search_attributes([keys.BACKORDER_STATUS.value_set("allocated")])

        async def dispatch() -> None:
            for step in STEPS:
                await workflow.execute_activity(
                    bench_step, step, start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=DISPATCH_RETRY)

        await asyncio.gather(self._message("allocated message"), dispatch())
        if visible:
            workflow.upsert_search_attributes([keys.BACKORDER_STATUS.value_set("dispatched")])
        await self._message("dispatched message")
        return len(STEPS) + 3

    @staticmethod
    async def _message(name: str) -> None:
        await workflow.execute_activity(bench_step, name, **NOTIFY_OPTIONS)

    @workflow.signal
    def allocated(self) -> None:
        self._allocated = True


LINE_LIKE_SEARCH_ATTRIBUTES = TypedSearchAttributes([
    SearchAttributePair(keys.SKU, "BENCH-SKU"),
    SearchAttributePair(keys.ORDER_NUMBER, "BENCH-1"),
    SearchAttributePair(keys.CUSTOMER_ID, "bench"),
    SearchAttributePair(keys.CUSTOMER_TIER, "standard"),
    SearchAttributePair(keys.BACKORDER_STATUS, "backordered"),
])
"""What a line workflow starts with (see `contracts.line.start_search_attributes`)."""


async def _main() -> None:
    from backorders.runtime import skip_idle_payload_passes, tune_gc
    from backorders.settings import Settings
    from backorders.temporal import connect
    from worker import worker_options

    settings = Settings()
    client = await connect(settings, attempts=60)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    skip_idle_payload_passes()  # as build_worker does
    worker = Worker(client, task_queue=settings.task_queue, workflows=[BareLine],
                    activities=[bench_step], **worker_options(settings))
    tune_gc()  # as worker.py does
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
