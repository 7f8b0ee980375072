"""Sample facts for the template tests: a kettle order with every fact known, or with
everything optional left out, so both sides of every template `if` run."""

from __future__ import annotations

from datetime import date
from typing import Any

from backorders.notify.message import Event
from backorders.notify.templates import (
    CustomerFacts,
    IntakeFacts,
    LineFacts,
    OptOut,
    ReceiptFacts,
    ShortageFacts,
    StockFacts,
    facts_needed,
)

SAMPLE_OPT_OUT = OptOut(url="https://example.com/unsubscribe?c=C-1&t=abc", keyword="STOP")


def sample_facts(event: Event, *, sparse: bool = False) -> dict[str, Any]:
    """Keyword arguments for `render(event, ...)`. `sparse` leaves out everything optional
    (no name, no dates, no queue position, no tracking) so both sides of every `if` run."""
    customer = CustomerFacts(id="C-1", name=None if sparse else "Ada", tier=None if sparse else "gold")
    line = LineFacts(
        order_number="1001",
        sku="KET-BLUE",
        product_name=None if sparse else "Blue kettle",
        quantity=5,
        backordered_quantity=3,
        shipped_quantity=2,
        status="backordered",
        queue_position=None if sparse else 4,
        units_ahead=None if sparse else 9,
        expected_date=None if sparse else date(2026, 3, 3),
        tracking_number=None if sparse else "1Z999AA10123456784",
        reason=None if sparse else "our supplier's shipment was held at the port",
        days_waiting=0 if sparse else 12,
        promised_date=None if sparse else date(2026, 2, 24),
        allocated_quantity=3,
        cancelled_quantity=1,
        likely_date=None if sparse else date(2026, 3, 5),
        latest_date=None if sparse else date(2026, 3, 12),
    )
    second = LineFacts(
        order_number="1002",
        sku="MUG-RED",
        product_name=None if sparse else "Red mug",
        quantity=2,
        backordered_quantity=0,
        shipped_quantity=2,
        status="dispatched",
        queue_position=None,
        units_ahead=None,
        expected_date=None,
    )
    stock = StockFacts(
        sku="KET-BLUE",
        product_name=None if sparse else "Blue kettle",
        on_hand=4,
        available=1,
        waiting_units=30,
        waiting_lines=11,
        threshold=None if sparse else 5,
        incoming_units=0 if sparse else 12,
    )
    receipt = ReceiptFacts(
        receipt_id="GR-77", sku="KET-BLUE", quantity=20, allocated_quantity=14, lines_served=6,
        to_stock_quantity=6,
    )
    intake = IntakeFacts(
        intake_id=42, channel="shop", reason="unknown_sku",
        message="no product with SKU 'KET-RED'", order_number=None if sparse else "1001",
        order_value=None if sparse else "64.00")
    shortage = ShortageFacts(
        sku="KET-BLUE", product_name=None if sparse else "Blue kettle",
        stockout_date=date(2026, 3, 10), lead_time_days=21, available=4, incoming_units=0,
        predicted_backorder_units=35, suggested_quantity=60, reorder_point=48,
        safety_stock=12, order_by=None if sparse else date(2026, 2, 17),
        supplier_id=None if sparse else "ACME", substitutes=None if sparse else "KET-RED")
    facts: dict[str, Any] = {
        "intake": intake,
        "shortage": shortage,
        "customer": customer,
        "line": line,
        "lines": [line, second],
        "stock": stock,
        "receipt": receipt,
        "opt_out": SAMPLE_OPT_OUT,
    }
    return {name: facts[name] for name in facts_needed(event)}
