"""Payloads: every client and worker of ours uses one converter, and what it writes
reads back with the SDK's default converter and the other way round (recorded
histories, older workers)."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import temporalio.converter._payload_converter as _sdk_converter
from pydantic import TypeAdapter
from temporalio.client import Client
from temporalio.converter import DataConverter

from backorders.contracts import activities as a
from backorders.contracts import digest as d
from backorders.contracts import line as c
from backorders.settings import Settings
from backorders.temporal import DATA_CONVERTER, connect

AT = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)
ALLOCATION = c.AllocationRef("a1", 2, "receipt", "R-1")
VIEW = c.AllocationView("a1", 2, "receipt", "dispatched", "R-1", "SIM123")
TIMELINE = [c.TimelineEntry(AT, "allocated", "2 unit(s) allocated from receipt R-1"),
            c.TimelineEntry(AT + timedelta(hours=1), "dispatched", "2 unit(s) dispatched")]
PROGRESS = c.LineProgress(1, 2, 0, [VIEW], ["cancel-1"], TIMELINE, "2026-12-01", False)

EXAMPLES: list[Any] = [
    ALLOCATION,
    c.LineInput("l1", "o1", "SO-1", "web", "SKU-1", "c1", "gold", 5, 3,
                intake_allocation=ALLOCATION, progress=PROGRESS, promised_date="2026-12-24",
                escalate_at_once=True, expected_date=None, held=True),
    c.LineInput("l2", "o2", "SO-2", "retail", "SKU-2", "c2", "standard", 1, 1),
    c.CancelNotice("cancel-1", "customer asked", 1, [ALLOCATION]),
    a.StepInput("a1", "l1", "SKU-1", 2),
    a.StepResult("a1", "dispatched", "SIM123"),
    a.StepResult("a1", "picking"),
    PROGRESS,
    c.LineState("l1", "o1", "SO-1", "SKU-1", "c1", "gold", "dispatched", 5, 0, 5, 0, [VIEW],
                TIMELINE, None, False),
    a.LineNotice("l1", "allocated", "l1:allocated:a1", AT, "detail", 3, 2),
    a.LineNotice("l1", "status_update", "l1:status_update:1", AT),
    a.NotifyOutcome([1, 2], "queued", AT + timedelta(hours=8)),
    a.NotifyOutcome([], "none"),
    d.DigestInput("c1", AT),
    c.EtaNotice("eta-1", "2026-12-01", False, True, True, "purchase order moved"),
    c.DelayNotice("delay-1", "supplier slipped"),
    [1, 2, 3],
    None,
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_contract_reads_back_whichever_converter_wrote_it(value):
    ours, sdk = DATA_CONVERTER.payload_converter, DataConverter.default.payload_converter
    hint = type(value) if value is not None else None
    for writer, reader in ((ours, ours), (sdk, ours), (ours, sdk)):
        payloads = writer.to_payloads([value])
        assert reader.from_payloads(payloads, [hint] if hint else None) == [value]


def test_reading_a_payload_does_not_work_out_its_type_again_each_time(monkeypatch):
    """The SDK's default converter resolves a dataclass's type hints on every decode
    (the contracts' annotations are strings, so each is evaluated again)."""
    calls = 0
    resolve = typing.get_type_hints

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return resolve(*args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    monkeypatch.setattr(_sdk_converter, "get_type_hints", counting)  # imported by name
    notice = a.LineNotice("l1", "allocated", "l1:allocated:a1", AT, None, 0, 1)

    def decode_100(converter: DataConverter) -> int:
        nonlocal calls
        payloads = converter.payload_converter.to_payloads([notice])
        converter.payload_converter.from_payloads(payloads, [a.LineNotice])  # warm
        calls = 0
        for _ in range(100):
            converter.payload_converter.from_payloads(payloads, [a.LineNotice])
        return calls

    assert decode_100(DATA_CONVERTER) == 0
    assert decode_100(DataConverter.default) >= 100


async def test_workers_and_the_api_connect_with_our_converter(monkeypatch):
    used: list[Any] = []

    async def recording_connect(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs.get("data_converter"))
        return object()

    monkeypatch.setattr(Client, "connect", recording_connect)
    await connect(Settings(_env_file=None))

    from api.app import create_app

    app = create_app(Settings(_env_file=None), engine=object())  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        pass
    assert used == [DATA_CONVERTER, DATA_CONVERTER]


def test_a_converter_made_for_each_workflow_activation_reuses_the_type_adapters(monkeypatch):
    """The SDK makes a data converter, and so a payload converter, for every workflow
    activation: building pydantic's type adapters afresh each time cost more than the
    default converter saved."""
    notice = a.LineNotice("l1", "dispatched", "l1:dispatched:a1", AT, None, 0, 1)
    payloads = DATA_CONVERTER.payload_converter.to_payloads([notice])
    DATA_CONVERTER.payload_converter.from_payloads(payloads, [a.LineNotice])  # warm
    built = 0
    init = TypeAdapter.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(TypeAdapter, "__init__", counting)
    for _ in range(20):
        per_activation = DataConverter(payload_converter_class=DATA_CONVERTER.payload_converter_class)
        assert per_activation.payload_converter.from_payloads(payloads, [a.LineNotice]) == [notice]
    assert built == 0
