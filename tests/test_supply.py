"""Supply from the ERP (F3, F9, F17, F18): expected dates walked from the queue against
open purchase orders, re-dated when a purchase order slips or a priority order jumps the
queue (and the customers told), supplier performance on a known history, discontinued
SKUs cancelling their waiting lines with refunds, the backorder_until policy, and
ship-complete orders held until every line can ship."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from backorders.services.forecasts import today_utc
from tests.support import (
    eventually,
    make_product,
    order_body,
    place,
    receive,
    rows,
    scalar,
    wait_settled,
)
from workflows.line import LineWorkflow

pytestmark = pytest.mark.usefixtures("one_utc_day")
LEAD = 2  # ETA_HANDLING_DAYS default


def day(offset: int) -> str:
    return (today_utc() + timedelta(days=offset)).isoformat()


async def put_po(api, number: str, supplier: str, lines: list[tuple[str, int, int]],
                 status: str = "open") -> dict[str, Any]:
    r = await api.put(f"/purchase-orders/{number}", json={
        "supplier": {"id": supplier, "name": supplier.title()}, "status": status,
        "lines": [{"sku": sku, "quantity": q, "expected_at": day(offset)}
                  for sku, q, offset in lines]})
    assert r.status_code in (200, 201), r.text
    return r.json()


async def expected(api, sku: str) -> dict[str, tuple[int, str | None, bool]]:
    r = await api.get("/backorders", params={"sku": sku})
    assert r.status_code == 200, r.text
    return {b["order_number"]: (b["queue_position"], b["expected_date"], b["no_supply"])
            for b in r.json()["items"]}


async def test_expected_dates_walk_the_queue_against_purchase_orders_and_a_priority_jump(
        api, worker, db):
    await make_product(api, "ETA-1", allocation_policy="priority")
    for n in ("S-1", "S-2", "S-3"):
        await place(api, n, [("ETA-1", 2)], customer=f"c-{n}")
    await put_po(api, "PO-A", "acme", [("ETA-1", 3, 5)])
    await put_po(api, "PO-B", "bolt", [("ETA-1", 5, 10)])

    assert await expected(api, "ETA-1") == {
        "S-1": (1, day(5 + LEAD), False),   # units 1-2 of PO-A's 3
        "S-2": (2, day(10 + LEAD), False),  # unit 3 from PO-A, unit 4 from PO-B
        "S-3": (3, day(10 + LEAD), False),
    }

    jump = await place(api, "P-1", [("ETA-1", 2)], customer="vip", tier="platinum")
    await place(api, "S-4", [("ETA-1", 1)], customer="late")
    assert await expected(api, "ETA-1") == {
        "P-1": (1, day(5 + LEAD), False),
        "S-1": (2, day(10 + LEAD), False),  # pushed back five days: told
        "S-2": (3, day(10 + LEAD), False),
        "S-3": (4, day(10 + LEAD), False),
        "S-4": (5, None, True),             # beyond every open purchase order
    }
    order = (await api.get(f"/orders/{jump['id']}")).json()
    assert (order["lines"][0]["queue_position"], order["lines"][0]["expected_date"]) == (
        1, day(5 + LEAD))

    await wait_settled(db)
    moved = await rows(db, """SELECT o.order_number, e.message FROM line_events e
                              JOIN order_lines l ON l.id = e.line_id
                              JOIN orders o ON o.id = l.order_id
                              WHERE e.kind = 'expected_date' ORDER BY o.order_number""")
    assert sorted((m.order_number, m.message) for m in moved) == [
        ("S-1", f"expected date moved from {day(5 + LEAD)} to {day(10 + LEAD)}"),
        ("S-1", f"now expected by {day(5 + LEAD)}"),  # PO-A gave them a date
        ("S-2", f"now expected by {day(10 + LEAD)}"),  # PO-B did
        ("S-3", f"now expected by {day(10 + LEAD)}"),
    ]
    delayed = await eventually(lambda: rows(
        db, "SELECT customer_id, status FROM notifications WHERE event = 'delayed'"),
        what="the customer pushed back to be told")
    assert [(d.customer_id, d.status) for d in delayed] == [("c-S-1", "sent")]
    s1 = next(b for b in (await api.get("/backorders", params={"sku": "ETA-1"})).json()["items"]
              if b["order_number"] == "S-1")
    state = await eventually(
        lambda: worker.client.get_workflow_handle_for(LineWorkflow.run, s1["workflow_id"])
        .query(LineWorkflow.state), lambda s: s.expected_date == day(10 + LEAD),
        what="the workflow to hear the new date")
    assert not state.no_supply


async def test_a_slipping_purchase_order_redates_its_lines_and_tells_customers(api, worker, db):
    await make_product(api, "ETA-2")
    await place(api, "SL-1", [("ETA-2", 2)], customer="ann")
    await place(api, "SL-2", [("ETA-2", 2)], customer="ben")
    await put_po(api, "PO-S", "slowco", [("ETA-2", 4, 3)])
    assert {k: v[1] for k, v in (await expected(api, "ETA-2")).items()} == {
        "SL-1": day(3 + LEAD), "SL-2": day(3 + LEAD)}

    await put_po(api, "PO-S", "slowco", [("ETA-2", 4, 4)])  # a day later: not worth a message
    await put_po(api, "PO-S", "slowco", [("ETA-2", 4, 12)])  # eight more days: tell them
    assert {k: v[1] for k, v in (await expected(api, "ETA-2")).items()} == {
        "SL-1": day(12 + LEAD), "SL-2": day(12 + LEAD)}
    told = await eventually(lambda: rows(
        db, "SELECT customer_id FROM notifications WHERE event = 'delayed' AND status = 'sent' "
            "ORDER BY customer_id"), lambda rs: len(rs) == 2, what="both customers told")
    assert [t.customer_id for t in told] == ["ann", "ben"]

    await put_po(api, "PO-S", "slowco", [("ETA-2", 4, 12)], status="cancelled")
    assert {v[2] for v in (await expected(api, "ETA-2")).values()} == {True}  # no supply


async def test_receipts_against_a_purchase_order_close_it_and_feed_supplier_statistics(
        api, worker, db):
    await make_product(api, "SUP-1")
    for i in range(3):
        await place(api, f"W-{i}", [("SUP-1", 2)], customer=f"w{i}")
    await put_po(api, "PO-LATE", "lateco", [("SUP-1", 4, -5)])   # promised five days ago
    await put_po(api, "PO-ONTIME", "goodco", [("SUP-1", 6, 3)])  # due in three days

    r = await api.post("/receipts", json={"receipt_id": "G-1", "sku": "SUP-1", "quantity": 4,
                                          "purchase_order": "PO-LATE"})
    assert r.status_code == 201 and r.json()["allocated_quantity"] == 4
    r = await api.post("/receipts", json={"receipt_id": "G-2", "sku": "SUP-1", "quantity": 3,
                                          "purchase_order": "PO-ONTIME"})
    assert r.status_code == 201 and r.json()["allocated_quantity"] == 2  # 1 to stock

    po = (await api.get("/purchase-orders/PO-ONTIME")).json()
    assert (po["lines"][0]["received_quantity"], po["lines"][0]["quantity"]) == (3, 6)
    late = (await api.get("/suppliers/lateco/performance")).json()
    assert late["skus"] == [{"sku": "SUP-1", "receipts": 1, "units": 4, "on_time_rate": 0.0,
                             "average_delay_days": 5.0, "worst_delay_days": 5,
                             "backorder_unit_days": 20}]
    good = (await api.get("/suppliers/goodco/performance")).json()
    assert (good["on_time_rate"], good["average_delay_days"], good["backorder_unit_days"]) == (
        1.0, 0.0, 0)
    ranked = (await api.get("/suppliers")).json()
    assert [s["id"] for s in ranked] == ["lateco", "goodco"]
    assert (await api.get("/suppliers/nobody/performance")).status_code == 404


async def test_discontinuing_a_sku_cancels_its_waiting_lines_with_refunds(api, worker, db):
    await make_product(api, "DIS-1", on_hand=1)
    first = await place(api, "D-1", [("DIS-1", 3, "12.50")], customer="dee")  # 1 ships, 2 wait
    second = await place(api, "D-2", [("DIS-1", 1, "12.50")], customer="eve")
    await wait_settled(db)

    r = await api.put("/products/DIS-1", json={"backorder": {"discontinued": True}})
    assert r.status_code == 200, r.text
    await wait_settled(db)

    for order, cancelled, shipped in ((first, 2, 1), (second, 1, 0)):
        line = (await api.get(f"/orders/{order['id']}")).json()["lines"][0]
        assert (line["cancelled_quantity"], line["shipped_quantity"],
                line["backordered_quantity"]) == (cancelled, shipped, 0)
    refunds = (await api.get("/refunds", params={"sku": "DIS-1"})).json()
    assert sorted((f["customer_id"], f["quantity"], f["amount"]) for f in refunds) == [
        ("dee", 2, "25.0000"), ("eve", 1, "12.5000")]
    told = await eventually(lambda: rows(
        db, "SELECT customer_id FROM notifications WHERE event = 'cancelled' AND status = 'sent' "
            "ORDER BY customer_id"), lambda rs: len(rs) == 2, what="customers told")
    assert [t.customer_id for t in told] == ["dee", "eve"]
    r = await api.post("/orders", json={"channel": "web", "order_number": "D-3",
                                        "customer": {"id": "fay"},
                                        "lines": [{"sku": "DIS-1", "quantity": 1,
                                                   "unit_price": "12.50"}]})
    assert r.status_code == 409 and r.json()["error"] == "sku_discontinued"
    # Discontinuing again finds nothing left to cancel and refunds nothing twice.
    await api.put("/products/DIS-1", json={"backorder": {"discontinued": True}})
    assert len((await api.get("/refunds", params={"sku": "DIS-1"})).json()) == 2


async def test_backorders_are_refused_after_backorder_until(api, worker, db):
    yesterday = (today_utc() - timedelta(days=1)).isoformat()
    await make_product(api, "UNTIL-1", on_hand=1, backorder_until=yesterday)
    r = await api.post("/orders", json={"channel": "web", "order_number": "U-1",
                                        "customer": {"id": "gil"},
                                        "lines": [{"sku": "UNTIL-1", "quantity": 2,
                                                   "unit_price": "1.00"}]})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "backorders_closed" and r.json()["field"] == "lines[0].quantity"
    ok = await place(api, "U-2", [("UNTIL-1", 1)], customer="gil")  # what is on hand still sells
    assert ok["lines"][0]["backordered_quantity"] == 0
    assert (await api.get("/inventory/UNTIL-1")).json()["backordered"] == 0


async def test_a_ship_complete_order_holds_every_line_until_all_can_ship(api, worker, db):
    await make_product(api, "SC-A", on_hand=5)
    await make_product(api, "SC-B", on_hand=1)
    body = order_body("SC-1", [("SC-A", 2), ("SC-B", 3)], customer="whole")
    body["ship_complete"] = True
    r = await api.post("/orders", json=body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert [ln["fulfillable_quantity"] for ln in order["lines"]] == [2, 1]

    await eventually(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"),
                     lambda n: n == 0, what="the lines' workflows to start")
    await asyncio.sleep(1.0)  # time enough to ship, were anything allowed to
    held = (await api.get(f"/orders/{order['id']}")).json()
    assert [ln["shipped_quantity"] for ln in held["lines"]] == [0, 0]
    assert held["released_at"] is None and held["ship_complete"]

    await receive(api, "SC-GRN", "SC-B", 2)
    done = await eventually(lambda: api.get(f"/orders/{order['id']}"),
                            lambda r: [ln["shipped_quantity"] for ln in r.json()["lines"]] == [2, 3],
                            what="the whole order to ship")
    assert done.json()["released_at"] is not None
    await wait_settled(db)


async def test_an_order_that_can_ship_complete_at_once_is_not_held(api, worker, db):
    await make_product(api, "SC-C", on_hand=4)
    body = order_body("SC-2", [("SC-C", 4)], customer="whole")
    body["ship_complete"] = True
    order = (await api.post("/orders", json=body)).json()
    await wait_settled(db)
    line = (await api.get(f"/orders/{order['id']}")).json()["lines"][0]
    assert line["shipped_quantity"] == 4


async def test_a_cancellation_ahead_brings_the_next_lines_dates_forward(api, worker, db):
    await make_product(api, "ETA-3")
    first = await place(api, "F-1", [("ETA-3", 2)], customer="fia")
    await place(api, "F-2", [("ETA-3", 2)], customer="gus")
    await put_po(api, "PO-EARLY", "acme", [("ETA-3", 2, 2)])
    await put_po(api, "PO-LATER", "acme", [("ETA-3", 2, 20)])
    assert await expected(api, "ETA-3") == {"F-1": (1, day(2 + LEAD), False),
                                            "F-2": (2, day(20 + LEAD), False)}

    r = await api.post(f"/orders/{first['id']}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    assert await expected(api, "ETA-3") == {"F-2": (1, day(2 + LEAD), False)}
    await eventually(lambda: rows(
        db, "SELECT status FROM notifications WHERE customer_id = 'gus' "
            "AND event = 'status_update'"),
        lambda rs: [t.status for t in rs] == ["sent", "sent"],
        what="gus told of his first date (PO-LATER), then of the earlier one")
    assert not await rows(db, "SELECT 1 FROM notifications WHERE customer_id = 'gus' "
                              "AND event = 'delayed'")


async def test_discontinuing_cancels_only_what_waits_and_units_in_hand_still_ship(
        api, worker, db):
    await make_product(api, "DIS-A", on_hand=5)
    await make_product(api, "DIS-B", on_hand=1)
    body = order_body("DH-1", [("DIS-A", 2), ("DIS-B", 3, "8.00")], customer="hal")
    body["ship_complete"] = True  # holds the allocated unit of DIS-B until the order is whole
    order = (await api.post("/orders", json=body)).json()
    await eventually(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"),
                     lambda n: n == 0, what="the lines' workflows to start")

    r = await api.put("/products/DIS-B", json={"backorder": {"discontinued": True}})
    assert r.status_code == 200, r.text
    # Nothing waits any more, so the held order is whole: both lines ship what is in hand.
    done = await eventually(
        lambda: api.get(f"/orders/{order['id']}"),
        lambda r: [(ln["shipped_quantity"], ln["cancelled_quantity"])
                   for ln in r.json()["lines"]] == [(2, 0), (1, 2)],
        what="the units in hand to ship")
    assert done.json()["released_at"] is not None
    refunds = (await api.get("/refunds", params={"sku": "DIS-B"})).json()
    assert [(f["customer_id"], f["quantity"], f["amount"]) for f in refunds] == [
        ("hal", 2, "16.0000")]
    await wait_settled(db)
    assert (await api.get("/inventory/DIS-B")).json() == {
        **(await api.get("/inventory/DIS-B")).json(), "on_hand": 0, "reserved": 0,
        "backordered": 0}
