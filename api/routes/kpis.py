"""KPIs for ops and parts managers, and their series for charts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import ServicesDep
from backorders.domain.kpis import SERIES_METRICS
from backorders.schemas import CHANNEL_PATTERN, IDENTIFIER_PATTERN, SKU_PATTERN, Day, Timestamp
from backorders.services import kpis
from backorders.services.errors import Invalid
from backorders.services.kpis import Period, Scope

router = APIRouter(tags=["kpis"])

Bound = Timestamp | Day
_BOUND_HELP = ("ISO 8601 time with an offset, or a date (UTC): `from` a date starts at "
               "its midnight, `to` a date includes that whole day")


def _start(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), UTC)


def _end(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value + timedelta(days=1), time(), UTC)


EARLIEST, LATEST = date(1970, 1, 1), date(2100, 1, 1)


def _in_range(value: datetime | date | None, name: str) -> None:
    day = value.date() if isinstance(value, datetime) else value
    if day is not None and not EARLIEST <= day < LATEST:
        raise Invalid("out_of_range", f"`{name}` must be between {EARLIEST} and {LATEST}",
                      field=name)


def period(start: datetime | date | None, end: datetime | date | None) -> Period:
    """The period a request names; without bounds, the 30 days up to now."""
    _in_range(start, "from")
    _in_range(end, "to")
    return Period.of(_start(start), _end(end), datetime.now(UTC))


From = Annotated[Bound | None, Query(alias="from", description=_BOUND_HELP)]
To = Annotated[Bound | None, Query(description=_BOUND_HELP + " (exclusive for a time)")]
SkuQuery = Annotated[str | None, Query(pattern=SKU_PATTERN)]
ChannelQuery = Annotated[str | None, Query(pattern=CHANNEL_PATTERN)]
CustomerQuery = Annotated[str | None, Query(max_length=128, pattern=IDENTIFIER_PATTERN)]


@router.get("/kpis")
async def get_kpis(services: ServicesDep, from_: From = None, to: To = None,
                   sku: SkuQuery = None, channel: ChannelQuery = None,
                   customer_id: CustomerQuery = None) -> dict[str, Any]:
    """Every KPI for the period (default: the last 30 days) and scope, each with its
    value, target, whether it meets it, its definition, and its numerator and
    denominator (or mean and percentiles); `ageing` is the waiting lines now."""
    return await kpis.kpis(services.engine, period(from_, to),
                           Scope(sku=sku, channel=channel, customer_id=customer_id),
                           datetime.now(UTC))


@router.get("/kpis/series")
async def get_series(services: ServicesDep,
                     metric: Annotated[Literal[SERIES_METRICS], Query()],  # type: ignore[valid-type]
                     bucket: Literal["day", "week"] = "day", from_: From = None, to: To = None,
                     sku: SkuQuery = None, channel: ChannelQuery = None,
                     customer_id: CustomerQuery = None) -> dict[str, Any]:
    """One metric per UTC day or week over the period, for charts; every bucket is
    present, an empty one with no value."""
    return await kpis.series(services.engine, metric, bucket, period(from_, to),
                             Scope(sku=sku, channel=channel, customer_id=customer_id))
