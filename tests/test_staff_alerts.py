"""The staff shortfall alert compares the units waiting with what open purchase orders
still have to deliver: covered waiting stays quiet, and an uncovered shortfall names the
true incoming figure."""

from __future__ import annotations

from tests.support import make_product, place, receive, rows
from tests.test_supply import put_po


async def _shortfalls(db, sku: str) -> list:
    return await rows(db, "SELECT facts FROM notifications WHERE audience = 'staff' "
                          "AND event = 'supply_shortfall' AND sku = :sku", sku=sku)


async def test_waiting_units_an_open_purchase_order_covers_raise_no_shortfall(api, db):
    await make_product(api, "SF-1")
    await put_po(api, "PO-SF-1", "acme", [("SF-1", 5, 4)])
    await place(api, "SF-1-A", [("SF-1", 3)])
    await place(api, "SF-1-B", [("SF-1", 2)])  # 5 waiting, 5 incoming
    assert await _shortfalls(db, "SF-1") == []


async def test_a_shortfall_beyond_open_purchase_orders_alerts_with_the_true_incoming(api, db):
    await make_product(api, "SF-2")
    await put_po(api, "PO-SF-2", "acme", [("SF-2", 5, 4)])
    await put_po(api, "PO-SF-3", "bolt", [("SF-2", 2, 9)])
    await receive(api, "SF-GRN-1", "SF-2", 1, purchase_order="PO-SF-2")  # 6 still incoming
    await place(api, "SF-2-A", [("SF-2", 6)])
    assert await _shortfalls(db, "SF-2") == []  # 5 waiting (1 shipped), 6 incoming
    await place(api, "SF-2-B", [("SF-2", 4)])  # 9 waiting, 6 incoming
    alerts = await _shortfalls(db, "SF-2")  # one per team concerned, with the same facts
    assert alerts and {(a.facts["stock"]["waiting_units"], a.facts["stock"]["incoming_units"])
                       for a in alerts} == {(9, 6)}


async def test_a_purchase_order_cut_below_the_waiting_units_raises_the_shortfall(api, db):
    await make_product(api, "SF-3")
    await put_po(api, "PO-SF-4", "acme", [("SF-3", 4, 4)])
    await place(api, "SF-3-A", [("SF-3", 4)])
    assert await _shortfalls(db, "SF-3") == []
    await put_po(api, "PO-SF-4", "acme", [("SF-3", 1, 4)])  # the supplier can send only 1
    alerts = await _shortfalls(db, "SF-3")
    assert alerts and {(a.facts["stock"]["waiting_units"], a.facts["stock"]["incoming_units"])
                       for a in alerts} == {(4, 1)}
