"""The demand forecast run: list the SKUs, forecast them a batch at a time (a few
batches at once), add up what happened. Started by its Temporal Schedule every day,
or by hand for some SKUs; each batch is an activity, so a crashed worker's batch is
retried elsewhere and finished batches are not redone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.forecast import ForecastActivities
    from backorders.contracts.forecast import (
        WORKFLOW_TYPE,
        BatchResult,
        ForecastBatch,
        ForecastRun,
        RunResult,
    )

_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=10)


@workflow.defn(name=WORKFLOW_TYPE)
class ForecastWorkflow:
    def __init__(self) -> None:
        self._result = RunResult()

    @workflow.run
    async def run(self, run: ForecastRun) -> RunResult:
        skus = await workflow.execute_activity_method(
            ForecastActivities.skus_to_forecast, run,
            start_to_close_timeout=timedelta(minutes=2), retry_policy=_RETRY)
        size = max(1, run.batch_size)
        batches = [skus[i:i + size] for i in range(0, len(skus), size)]
        self._result.skus = len(skus)
        step = max(1, run.parallel_batches)
        for first in range(0, len(batches), step):
            done = await asyncio.gather(*(
                workflow.execute_activity_method(
                    ForecastActivities.forecast_batch, ForecastBatch(batch),
                    start_to_close_timeout=timedelta(minutes=20), retry_policy=_RETRY)
                for batch in batches[first:first + step]))
            for result in done:
                self._add(result)
        return self._result

    def _add(self, batch: BatchResult) -> None:
        self._result.batches += 1
        self._result.forecast += batch.forecast
        self._result.fallback += batch.fallback
        self._result.shortages += batch.shortages

    @workflow.query
    def progress(self) -> RunResult:
        """How far the run has got: SKUs listed, batches and SKUs done, alerts sent."""
        return self._result
