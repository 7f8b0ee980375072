"""Optional OpenTelemetry tracing (`TRACING=true`; off by default).

When on, each process exports its spans over OTLP as the standard `OTEL_*` variables
say (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, ...), Temporal's tracing
interceptor carries the trace through every workflow and activity, FastAPI's
instrumentation opens a span per request, and the outbox keeps the context of the
request that wrote each message (`carrier()`), so the relay's delivery, and the line
workflow and activities it wakes, continue the request's trace (`continued()`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from backorders.logs import REQUEST_ID_KEY
from backorders.settings import Settings

log = logging.getLogger(__name__)

_enabled = False


def enabled() -> bool:
    return _enabled


def setup(settings: Settings, service: str) -> None:
    """Install the tracer provider for this process (once); a no-op when tracing is off."""
    global _enabled
    if not settings.tracing or _enabled:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing on: spans exported over OTLP as %s", service)


def use_provider(provider: Any) -> None:
    """Trace into a provider of the caller's (tests: an in-memory exporter)."""
    global _enabled
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    _enabled = True


def disable() -> None:
    """Stop tracing in this process (tests that turned it on)."""
    global _enabled
    _enabled = False


def tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("backorders")


def client_interceptors(settings: Settings) -> list[Any]:
    """Temporal's tracing interceptor when tracing is on (a client's interceptors also
    apply to the workers made from it)."""
    if not (settings.tracing or _enabled):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def instrument_app(app: Any, settings: Settings) -> None:
    if not (settings.tracing or _enabled):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health.*,metrics")


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, to keep beside an outbox message; None
    when tracing is off or no span is open."""
    if not _enabled:
        return None
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers or None


@contextmanager
def continued(name: str, headers: Mapping[str, str] | None,
              attributes: Mapping[str, str] | None = None) -> Iterator[None]:
    """A span continuing the trace `headers` carry (from `carrier()`); nothing when
    tracing is off or the message carries none (an outbox row may keep only its writer's
    request id)."""
    trace = {k: v for k, v in (headers or {}).items() if k != REQUEST_ID_KEY}
    if not _enabled or not trace:
        yield
        return
    from opentelemetry import propagate

    with tracer().start_as_current_span(name, context=propagate.extract(trace),
                                        attributes=dict(attributes or {})):
        yield
