"""What the API tells machines about each request: a request id in and out
(`X-Request-Id`, on every log record written while serving it), and the request's count
and latency by route template, method and status (`backorders_http_*`), then /metrics.

Route templates, not paths, keep the label set bounded; a path no route serves counts
as "unmatched"."""

from __future__ import annotations

import re
import time
import uuid

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backorders import logs, metrics
from backorders.services.gauges import Gauges

REQUEST_ID = "x-request-id"
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

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        with logs.bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route, method = route_of(scope), scope["method"]
                self.requests.labels(route, method, str(status)).inc()
                self.latency.labels(route, method).observe(time.perf_counter() - started)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = value.decode("latin-1").strip()
            if _VALID_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def exposition(gauges: Gauges) -> tuple[bytes, str]:
    """This process's (or, with PROMETHEUS_MULTIPROC_DIR, every API process's) counters
    and histograms, then the ledger's gauges."""
    directory = metrics.multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(metrics.GaugeCollector(gauges))
    return generate_latest(registry) + generate_latest(scraped), CONTENT_TYPE_LATEST
