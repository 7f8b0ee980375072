"""Forecasts and replenishment (F21): what demand is coming, when each SKU will run
short, and what to order by when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ServicesDep
from backorders.schemas import IDENTIFIER_PATTERN, SKU_PATTERN, ForecastOut, ReplenishmentOut
from backorders.services import forecasts

router = APIRouter(tags=["forecasting"])

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description="Stock keeping unit")]


@router.get("/forecast/{sku}", response_model=ForecastOut)
async def get_forecast(sku: SkuPath, services: ServicesDep) -> ForecastOut:
    """Demand history (units ordered per day, by channel, and cancellations), the
    forecast for the coming weeks with 80% and 95% intervals, the model chosen by its
    backtest, the projected stock per week and `stockout_date`. Recomputed first when
    the SKU's demand history changed since the stored forecast; stock and purchase
    orders are read as they are now."""
    return await forecasts.forecast(services.engine, sku, services.settings)


@router.get("/replenishment", response_model=list[ReplenishmentOut])
async def get_replenishment(
    services: ServicesDep,
    horizon_weeks: Annotated[int | None, Query(ge=1, le=52)] = None,
    supplier_id: Annotated[str | None, Query(min_length=1, max_length=128,
                                             pattern=IDENTIFIER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReplenishmentOut]:
    """What to order: SKUs whose inventory position reaches its reorder point within the
    horizon, the most predicted backorder units first, with the safety stock, reorder
    point, suggested quantity, the date to order by, and substitutes in stock."""
    return await forecasts.replenishment(
        services.engine, services.settings, horizon_weeks=horizon_weeks,
        supplier_id=supplier_id, limit=limit)
