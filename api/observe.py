"""What the API tells machines about each request: a request id in and out
(`X-Request-Id`, on every log record written while serving it), and the request's count
and latency by route template, method and status (`backorders_http_*`), then /metrics.

Route templates, not paths, keep the label set bounded; a path no route serves counts
as "unmatched"."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backorders import logs, metrics
from backorders.services.gauges import Gauges

log = logging.getLogger(__name__)

_HEADER = logs.REQUEST_ID_KEY.encode()
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
"""A client's own request id is kept when it is this tame; anything else is replaced
(it goes into logs and headers)."""

_requests: Counter | None = None
_latency: Histogram | None = None


def _metrics() -> tuple[Counter, Histogram]:
    global _requests, _latency
    if _requests is None or _latency is None:
        _requests = Counter(metrics.HTTP_REQUESTS.removesuffix("_total"),
                            "HTTP requests by route template, method and status",
                            ["route", "method", "status"])
        _latency = Histogram(metrics.HTTP_SECONDS, "HTTP request latency by route template",
                             ["route", "method"], buckets=metrics.HTTP_BUCKETS)
    return _requests, _latency


def route_of(scope: Scope) -> str:
    """The route template the access gate matched (it matches every request first)."""
    operation = scope.get("state", {}).get("operation")
    if operation:
        return operation.partition(" ")[2]
    if scope.get("path", "").startswith("/dashboard/static/"):
        return "/dashboard/static"
    return "unmatched"


class Observe:
    """ASGI middleware, outermost: ids and metrics for every request, refusals too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests, self.latency = _metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        status = 500

        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            await send(message)

        with logs.bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Logged here, under the request's id, and answered with it: outside this
                # middleware the id is gone.
                log.exception("%s %s failed", scope["method"], scope.get("path"))
                if answered:
                    raise
                status = 500
                await JSONResponse(
                    status_code=500, headers={logs.REQUEST_ID_KEY: request_id},
                    content={"error": "internal_error", "field": None,
                             "message": f"an unexpected error; quote request id {request_id}"},
                )(scope, receive, send)
            finally:
                route, method = route_of(scope), scope["method"]
                self.requests.labels(route, method, str(status)).inc()
                self.latency.labels(route, method).observe(time.perf_counter() - started)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            given = value.decode("latin-1").strip()
            if _VALID_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def exposition(gauges: Gauges | None) -> tuple[bytes, str]:
    """This process's (or, with PROMETHEUS_MULTIPROC_DIR, every API process's) counters
    and histograms, then the ledger's gauges (`backorders_gauges_up` 0 and none of them
    when the database could not be read)."""
    directory = metrics.multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(GaugeCollector(gauges))
    return generate_latest(registry) + generate_latest(scraped), CONTENT_TYPE_LATEST


SCALAR_GAUGES = (
    ("backorders_waiting_units", "waiting_units", "Units waiting for stock, all SKUs"),
    ("backorders_waiting_lines", "waiting_lines", "Order lines waiting, all SKUs"),
    ("backorders_outbox_pending", "outbox_pending", "Hand-offs to workflows not yet delivered"),
    ("backorders_outbox_oldest_pending_seconds", "outbox_oldest_pending_seconds",
     "Age of the oldest undelivered hand-off"),
    ("backorders_outbox_dead", "outbox_dead",
     "Hand-offs that gave up, waiting for ops to replay them"),
    ("backorders_intake_backlog", "intake_backlog",
     "Accepted order lines whose workflows wait for the relays"),
    ("backorders_intake_dead", "intake_dead", "Received orders parked dead, for ops to replay"),
)
"""(metric, `Gauges` field, help) of the ledger's unlabelled gauges."""


class GaugeCollector:
    """The ledger's gauges (`services.gauges`) as Prometheus families, for one scrape."""

    def __init__(self, gauges: Gauges | None) -> None:
        self._g = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = self._g
        yield GaugeMetricFamily("backorders_gauges_up",
                                "1 when the ledger's gauges below could be read", value=int(g is not None))
        if g is None:
            return
        for name, field, help_text in SCALAR_GAUGES:
            yield GaugeMetricFamily(name, help_text, value=getattr(g, field))
        units = GaugeMetricFamily("backorders_sku_waiting_units",
                                  "Units waiting, for the SKUs with most waiting (METRICS_TOP_SKUS)",
                                  labels=["sku"])
        lines = GaugeMetricFamily("backorders_sku_waiting_lines",
                                  "Lines waiting, for the SKUs with most units waiting",
                                  labels=["sku"])
        for sku in g.top_skus:
            units.add_metric([sku.sku], sku.units)
            lines.add_metric([sku.sku], sku.lines)
        yield units
        yield lines
        sent = GaugeMetricFamily("backorders_notifications",
                                 "Notifications created in the last 24 hours by channel and status",
                                 labels=["channel", "status"])
        for (channel, status), count in sorted(g.notifications.items()):
            sent.add_metric([channel, status], count)
        yield sent
