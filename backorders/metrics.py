"""Metrics for machines (Prometheus): the one place their names, buckets and meaning live.

Two kinds of process export them:

- API processes through `prometheus-client` (`/metrics`), which also aggregates several
  uvicorn workers when `PROMETHEUS_MULTIPROC_DIR` is set: request counts and latency by
  route template, and what the services measure while serving (allocations);
- workers through the Temporal SDK's own Prometheus exporter (`WORKER_METRICS_ADDRESS`),
  the SDK's metrics (task latencies, slots, sticky cache, failures) and ours on the same
  port, through the SDK's metric meter.

Services record through `recorder()`, whichever exporter the process has. The gauges
read from the database at scrape time (waiting units, backlogs) are in
`services.gauges`, exported by `api.observe`."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import Counter, Histogram

ALLOCATION_SECONDS = "backorders_allocation_seconds"
TIME_TO_ALERT_SECONDS = "backorders_time_to_alert_seconds"
NOTIFICATIONS_SENT = "backorders_notifications_sent_total"
HTTP_REQUESTS = "backorders_http_requests_total"
HTTP_SECONDS = "backorders_http_request_duration_seconds"

ALLOCATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ALERT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Time to alert is judged on p95 against 120 s (`domain.kpis`): buckets either side."""
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_HELP = {
    ALLOCATION_SECONDS: "Duration of allocation transactions (units handed to waiting lines)",
    TIME_TO_ALERT_SECONDS: "Seconds from the transaction that allocated a line's units to "
                           "the customer's 'allocated' message being sent (quiet hours and "
                           "digests left out), as the time_to_alert KPI",
    NOTIFICATIONS_SENT: "Notifications finished, by channel and outcome "
                        "(sent, failed, suppressed)",
}


class Recorder:
    """What the services measure, in whichever exporter the process has."""

    def allocation(self, seconds: float) -> None:
        raise NotImplementedError

    def notification(self, channel: str, outcome: str) -> None:
        raise NotImplementedError

    def time_to_alert(self, seconds: float) -> None:
        raise NotImplementedError


class ClientRecorder(Recorder):
    """prometheus-client's metrics (API processes, and any process without a meter)."""

    def __init__(self) -> None:
        self._allocation = Histogram(ALLOCATION_SECONDS, _HELP[ALLOCATION_SECONDS],
                                     buckets=ALLOCATION_BUCKETS)
        self._alert = Histogram(TIME_TO_ALERT_SECONDS, _HELP[TIME_TO_ALERT_SECONDS],
                                buckets=ALERT_BUCKETS)
        self._sent = Counter(NOTIFICATIONS_SENT.removesuffix("_total"), _HELP[NOTIFICATIONS_SENT],
                             ["channel", "outcome"])

    def allocation(self, seconds: float) -> None:
        self._allocation.observe(seconds)

    def notification(self, channel: str, outcome: str) -> None:
        self._sent.labels(channel, outcome).inc()

    def time_to_alert(self, seconds: float) -> None:
        self._alert.observe(seconds)


class MeterRecorder(Recorder):
    """The Temporal SDK's metric meter: a worker's metrics on the SDK's own port."""

    def __init__(self, meter: Any) -> None:
        self._allocation = meter.create_histogram_float(
            ALLOCATION_SECONDS, _HELP[ALLOCATION_SECONDS], "s")
        self._alert = meter.create_histogram_float(
            TIME_TO_ALERT_SECONDS, _HELP[TIME_TO_ALERT_SECONDS], "s")
        self._sent = meter.create_counter(NOTIFICATIONS_SENT, _HELP[NOTIFICATIONS_SENT])

    def allocation(self, seconds: float) -> None:
        self._allocation.record(max(0.0, seconds))

    def notification(self, channel: str, outcome: str) -> None:
        self._sent.add(1, {"channel": channel, "outcome": outcome})

    def time_to_alert(self, seconds: float) -> None:
        self._alert.record(max(0.0, seconds))


_recorder: Recorder | None = None


def recorder() -> Recorder:
    global _recorder
    if _recorder is None:
        _recorder = ClientRecorder()
    return _recorder


def install(chosen: Recorder) -> None:
    global _recorder
    _recorder = chosen


def worker_runtime(bind_address: str) -> Any:
    """A Temporal runtime exporting the SDK's metrics, and ours (installed as this
    process's recorder), on `bind_address`; durations in seconds, as Prometheus names
    them."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address, durations_as_seconds=True,
        histogram_bucket_overrides={ALLOCATION_SECONDS: list(ALLOCATION_BUCKETS),
                                    TIME_TO_ALERT_SECONDS: list(ALERT_BUCKETS)})))
    install(MeterRecorder(runtime.metric_meter))
    return runtime


def multiprocess_dir() -> str | None:
    """Where several API processes pool their counts (`PROMETHEUS_MULTIPROC_DIR`)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")

