"""Numbers for people: the template filters every dashboard page formats with."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from jinja2 import Environment

from backorders.domain.kpis import Kpi, Unit


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value:,.2f}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def duration(seconds: float | None) -> str:
    """12 s, 4 min, 3.5 h, 6.2 days."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def days(value: float | None) -> str:
    return "–" if value is None else duration(value * 86400)


def when(value: datetime | None) -> str:
    """3 Dec 2026 14:05 UTC."""
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%-d %b %Y %H:%M UTC")


def day(value: date | datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return value.strftime("%-d %b %Y")


def age(value: datetime | float | int | None) -> str:
    """How long ago, or how long: from a time, or from seconds."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = (datetime.now(UTC) - value).total_seconds()
    return duration(max(float(value), 0.0))


def kpi_value(kpi: Kpi, figure: dict[str, Any], key: str = "value") -> str:
    value = figure.get(key)
    match kpi.unit:
        case Unit.RATIO:
            return percent(value)
        case Unit.DAYS:
            return days(value)
        case Unit.SECONDS:
            return duration(value)
    return number(value)


def kpi_target(kpi: Kpi) -> str:
    if kpi.target is None or kpi.goal is None:
        return "no target"
    shown = {Unit.RATIO: percent(kpi.target), Unit.DAYS: days(kpi.target),
             Unit.SECONDS: duration(kpi.target)}.get(kpi.unit, number(kpi.target))
    sign = kpi.target_text.split(" ")[0] if kpi.target_text else ""
    on = f" ({kpi.judged_on})" if kpi.judged_on != "value" else ""
    return f"target {sign} {shown}{on}"


def install(env: Environment) -> None:
    env.filters.update(percent=percent, number=number, duration=duration, days=days,
                       when=when, day=day, age=age)
    env.globals.update(kpi_value=kpi_value, kpi_target=kpi_target, timedelta=timedelta)
