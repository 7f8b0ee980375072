"""Tracing, when it is on: an order's trace runs into the line workflow it starts and its
activities; a receipt's runs through the outbox to the signal that wakes the line, whose
handling (in the line's own trace) links back to it; and a hand-off the relay delivers
later still continues the trace of the transaction that wrote it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from api.app import create_app
from backorders import tracing
from backorders.contracts.line import WORKFLOW_TYPE, EtaNotice
from backorders.db import transaction
from backorders.services import outbox
from handoff.deliver import OutboxDeliverer
from tests.support import api_client, eventually, line_of, make_product, place, receive, start_worker

_EXPORTER = InMemorySpanExporter()
_PROVIDER: TracerProvider | None = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test only: OpenTelemetry allows one provider per process, so
    it is made once and tracing switched off again afterwards."""
    global _PROVIDER
    if _PROVIDER is None:
        _PROVIDER = TracerProvider()
        _PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    tracing.use_provider(_PROVIDER)
    _EXPORTER.clear()
    try:
        yield _EXPORTER
    finally:
        tracing.disable()


def traced(temporal_client: Client) -> Client:
    return Client(**{**temporal_client.config(), "interceptors": [TracingInterceptor()]})


def trace_of(exporter: InMemorySpanExporter, name: str) -> int:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert found, f"no span {name!r} in {sorted({s.name for s in exporter.get_finished_spans()})}"
    return found[0].context.trace_id


def names_in(exporter: InMemorySpanExporter, trace_id: int) -> set[str]:
    return {s.name for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}


async def test_an_order_and_a_receipt_each_trace_into_the_line_workflow(
        spans, temporal_env, db, settings):
    client = traced(temporal_env.client)
    async with start_worker(client, db, settings):
        app = create_app(settings, engine=db, client=client)
        async with api_client(app, db, settings) as api:
            await make_product(api, "TR-1")
            order = await place(api, "TR-ORDER", [("TR-1", 1)])
            await receive(api, "R-TR-1", "TR-1", 1)
            await eventually(lambda: line_of(api, order),
                             lambda line: line["status"] == "dispatched", what="shipment")
    ordered = names_in(spans, trace_of(spans, "POST /orders"))
    assert any(n.startswith(("StartWorkflow:", "SignalWithStartWorkflow:")) for n in ordered)
    assert f"RunWorkflow:{WORKFLOW_TYPE}" in ordered
    assert any(n.startswith("RunActivity:") for n in ordered), ordered
    receipt_trace = trace_of(spans, "POST /receipts")
    assert {"deliver line.allocated", "SignalWorkflow:allocated"} <= names_in(spans, receipt_trace)
    # The workflow handles the signal in its own trace (where its activities run), and
    # Temporal's interceptor links that span back to the receipt's.
    handled = [s for s in spans.get_finished_spans() if s.name == "HandleSignal:allocated"]
    assert any(link.context.trace_id == receipt_trace for s in handled for link in s.links)


async def test_a_hand_off_delivered_later_continues_the_trace_that_wrote_it(
        spans, temporal_env, db, settings):
    client = traced(temporal_env.client)
    async with start_worker(client, db, settings, relay=False):
        app = create_app(settings, engine=db, client=client)
        async with api_client(app, db, settings) as api:
            await make_product(api, "TR-2")
            order = await place(api, "TR-LATER", [("TR-2", 1)])
            line_id = uuid.UUID((await line_of(api, order))["id"])
        tracer = tracing.tracer()
        with tracer.start_as_current_span("ops change") as change:
            await transaction(db, lambda conn: outbox.enqueue(conn, [(line_id, EtaNotice(
                event_id="trace-test", expected_date=None, no_supply=True, tell_customer=False,
                later=False, reason="tracing test"))], settings, grace=0))
        report = await OutboxDeliverer(db, client, settings).deliver()
    assert report.delivered == 1
    same = names_in(spans, change.get_span_context().trace_id)
    assert {"deliver line.expected", "SignalWorkflow:expected"} <= same


def test_without_tracing_nothing_is_kept_beside_a_hand_off():
    assert tracing.carrier() is None
    assert outbox.trace_context() is None
