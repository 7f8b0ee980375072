"""The forecast workflow's activities: which SKUs to forecast, and one batch of them.
A batch is idempotent: it recomputes and overwrites the batch's forecasts, and its
shortage alerts are debounced, so a retried batch tells purchasing nothing twice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from backorders.contracts.forecast import BatchResult, ForecastBatch, ForecastRun
from backorders.services import forecasts
from backorders.settings import Settings


class ForecastActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @activity.defn(name="skus_to_forecast")
    async def skus_to_forecast(self, run: ForecastRun) -> list[str]:
        if run.skus is not None:
            return sorted(set(run.skus))
        return await forecasts.skus_to_forecast(self._engine)

    @activity.defn(name="forecast_batch")
    async def forecast_batch(self, batch: ForecastBatch) -> BatchResult:
        outcome = await forecasts.refresh(self._engine, batch.skus, self._settings)
        activity.logger.info("forecast %d SKU(s), %d fallback, %d shortage alert(s)",
                             outcome.forecast, outcome.fallback, outcome.shortages)
        return BatchResult(outcome.forecast, outcome.fallback, outcome.shortages)

    def all(self) -> list[object]:
        return [self.skus_to_forecast, self.forecast_batch]
