"""The demand-forecast workflow's public face: its type, the schedule that starts it,
and the typed inputs and outputs of its activities."""

from __future__ import annotations

from dataclasses import dataclass, field

WORKFLOW_TYPE = "DemandForecast"
SCHEDULE_ID = "demand-forecast"
"""The Temporal Schedule that starts a run every `FORECAST_SCHEDULE_CRON`."""


def workflow_id(skus: list[str] | None) -> str:
    """One run for everything at a time; a run for named SKUs is its own."""
    return "demand-forecast" if skus is None else "demand-forecast-" + "-".join(sorted(skus))[:200]


@dataclass
class ForecastRun:
    skus: list[str] | None = None
    """None: every product that is not discontinued."""
    batch_size: int = 250
    parallel_batches: int = 2


@dataclass
class ForecastBatch:
    skus: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    forecast: int
    fallback: int
    shortages: int
    """Impending-shortage alerts sent to purchasing."""


@dataclass
class RunResult:
    skus: int = 0
    batches: int = 0
    forecast: int = 0
    fallback: int = 0
    shortages: int = 0
