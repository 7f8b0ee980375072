"""The KPIs the business steers by: what each one means, its target, and which way is
good. The one place for these definitions: the API, the dashboard and the series all
read them from here; `backorders.services.kpis` computes them from the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Goal(StrEnum):
    ABOVE = "above"
    AT_LEAST = "at_least"
    BELOW = "below"
    AT_MOST = "at_most"


class Shape(StrEnum):
    RATIO = "ratio"
    """numerator ÷ denominator."""
    DISTRIBUTION = "distribution"
    """A mean and percentiles over one value per line or message."""
    COUNT = "count"
    """A number of things."""


class Unit(StrEnum):
    RATIO = "ratio"
    DAYS = "days"
    SECONDS = "seconds"
    UNITS = "units"
    LINES = "lines"


@dataclass(frozen=True)
class Kpi:
    key: str
    title: str
    shape: Shape
    unit: Unit
    definition: str
    target: float | None = None
    goal: Goal | None = None
    judged_on: str = "value"
    """For a distribution: the statistic the target applies to (`value` is the mean)."""

    def meets(self, measured: float | None) -> bool | None:
        """Whether the measured figure meets the target; None without a target or data."""
        if self.target is None or self.goal is None or measured is None:
            return None
        match self.goal:
            case Goal.ABOVE:
                return measured > self.target
            case Goal.AT_LEAST:
                return measured >= self.target
            case Goal.BELOW:
                return measured < self.target
            case Goal.AT_MOST:
                return measured <= self.target

    @property
    def target_text(self) -> str | None:
        if self.target is None or self.goal is None:
            return None
        sign = {Goal.ABOVE: ">", Goal.AT_LEAST: "≥", Goal.BELOW: "<", Goal.AT_MOST: "≤"}[self.goal]
        return f"{sign} {self.target:g}"


def _kpis(*kpis: Kpi) -> dict[str, Kpi]:
    return {k.key: k for k in kpis}


KPIS: dict[str, Kpi] = _kpis(
    Kpi("backorder_conversion_rate", "Backorder conversion", Shape.RATIO, Unit.RATIO,
        "Backordered units shipped in the period ÷ backordered units resolved in it "
        "(shipped + cancelled). A backordered unit is one the order could not take from "
        "stock; it resolves when its allocation is dispatched or when it is cancelled.",
        target=0.95, goal=Goal.ABOVE),
    Kpi("average_backorder_duration_days", "Backorder duration", Shape.DISTRIBUTION,
        Unit.DAYS,
        "For backordered lines whose last waiting unit was dispatched in the period (none "
        "of them cancelled): days from the line being backordered to that dispatch. Mean, "
        "with p50 and p90.",
        target=7, goal=Goal.BELOW),
    Kpi("fulfillment_accuracy", "Fulfillment accuracy", Shape.RATIO, Unit.RATIO,
        "Units dispatched in the period exactly once and matching an allocation (same "
        "allocation, same quantity, marked dispatched) ÷ units dispatched, counted from "
        "the stock movements each dispatch writes.",
        target=1.0, goal=Goal.AT_LEAST),
    Kpi("notification_delivery_rate", "Notification delivery", Shape.RATIO, Unit.RATIO,
        "Customer messages sent in the period ÷ (sent + failed); suppressed, held and "
        "digested messages are not counted.",
        target=0.985, goal=Goal.AT_LEAST),
    Kpi("time_to_alert_seconds", "Time to alert", Shape.DISTRIBUTION, Unit.SECONDS,
        "For `allocated` messages sent in the period: seconds from the transaction that "
        "allocated the units to the message being sent; messages the customer's quiet "
        "hours or digest held are left out. Judged on p95.",
        target=120, goal=Goal.BELOW, judged_on="p95"),
    Kpi("opt_out_rate", "Opt-out rate", Shape.RATIO, Unit.RATIO,
        "Customers sent a message in the period who opted out of a channel in it ÷ "
        "customers sent a message in the period. The seeds' baseline is 0.12; lower is "
        "better.",
        target=0.12, goal=Goal.BELOW),
    Kpi("cancellation_rate", "Backorder cancellations", Shape.RATIO, Unit.RATIO,
        "Backordered units cancelled in the period ÷ backordered units resolved in it "
        "(shipped + cancelled)."),
    Kpi("fill_rate", "Fill rate", Shape.RATIO, Unit.RATIO,
        "Units taken from stock when the order was placed ÷ units ordered, over lines "
        "placed in the period."),
    Kpi("backorder_rate", "Backorder rate", Shape.RATIO, Unit.RATIO,
        "Lines placed in the period with any backordered quantity ÷ lines placed in it."),
    Kpi("lead_time_days", "Lead time", Shape.DISTRIBUTION, Unit.DAYS,
        "For lines settled in the period (every unit dispatched or cancelled, at least one "
        "dispatched): days from the order being placed to the last dispatch. Mean, with "
        "p50 and p90."),
    Kpi("sla_breaches", "SLA breaches", Shape.COUNT, Unit.LINES,
        "Lines past their promised date now with units not yet dispatched (nor "
        "cancelled), with the customers they belong to; the period does not change it.",
        target=0, goal=Goal.AT_MOST),
)

AGEING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-2", 0, 2), ("3-7", 3, 7), ("8-14", 8, 14), ("15-30", 15, 30), (">30", 31, None))
"""Waiting lines by whole days waited: (label, first day, last day or open)."""

COUNTS: dict[str, str] = {
    "backorders_created": "Backordered units created (lines placed short) per bucket.",
    "backorders_fulfilled": "Backordered units dispatched per bucket.",
    "backorders_cancelled": "Backordered units cancelled per bucket.",
}
"""Flows that are charted but are not KPIs (no target)."""

SERIES_METRICS: tuple[str, ...] = tuple(
    k for k, kpi in KPIS.items() if kpi.shape is not Shape.COUNT) + tuple(COUNTS)
