"""A SKU's backorder policy decides whether a short line may wait; a refused order gets
a clear answer and leaves nothing behind."""

from __future__ import annotations

from tests.support import make_product, order_body, scalar


async def _nothing_stored(db) -> None:
    assert await scalar(db, "SELECT count(*) FROM orders") == 0
    assert await scalar(db, "SELECT count(*) FROM order_lines") == 0
    assert await scalar(db, "SELECT count(*) FROM outbox") == 0
    assert await scalar(db, "SELECT coalesce(sum(reserved), 0) FROM stock") == 0


async def test_a_sku_that_may_not_be_backordered_refuses_the_short_line(api, db):
    await make_product(api, "OK-SKU", on_hand=10)
    await make_product(api, "NO-BO", on_hand=1, backorder={"allowed": False})
    r = await api.post("/orders", json=order_body("P-1", [("OK-SKU", 2), ("NO-BO", 2)]))
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "backorder_not_allowed"
    assert body["field"] == "lines[1].quantity"
    assert "NO-BO" in body["message"] and "1 unit" in body["message"]
    await _nothing_stored(db)


async def test_a_sku_that_may_not_be_backordered_still_sells_what_is_there(api, db):
    await make_product(api, "NO-BO2", on_hand=2, backorder={"allowed": False})
    r = await api.post("/orders", json=order_body("P-2", [("NO-BO2", 2)]))
    assert r.status_code == 201
    assert r.json()["lines"][0]["fulfillable_quantity"] == 2


async def test_the_maximum_backorder_quantity_counts_every_waiting_line(api, db):
    await make_product(api, "CAPPED", backorder={"max_quantity": 5})
    assert (await api.post("/orders", json=order_body("C-1", [("CAPPED", 3)]))).status_code == 201
    assert (await api.post("/orders", json=order_body("C-2", [("CAPPED", 2)]))).status_code == 201
    r = await api.post("/orders", json=order_body("C-3", [("CAPPED", 1)]))
    assert r.status_code == 409 and r.json()["error"] == "backorder_limit_exceeded"
    assert "5" in r.json()["message"]
    assert await scalar(db, "SELECT backordered FROM stock WHERE sku = 'CAPPED'") == 5


async def test_a_discontinued_sku_takes_no_new_backorders(api, db):
    await make_product(api, "GONE", on_hand=1, backorder={"discontinued": True})
    r = await api.post("/orders", json=order_body("D-1", [("GONE", 2)]))
    assert r.status_code == 409 and r.json()["error"] == "sku_discontinued"
    assert r.json()["field"] == "lines[0].quantity"
    ok = await api.post("/orders", json=order_body("D-2", [("GONE", 1)]))
    assert ok.status_code == 201 and ok.json()["lines"][0]["backordered_quantity"] == 0


async def test_zero_stock_is_detected_when_the_order_comes_in(api, db):
    await make_product(api, "EMPTY")
    r = await api.post("/orders", json=order_body("Z-1", [("EMPTY", 4)]))
    line = r.json()["lines"][0]
    assert (line["fulfillable_quantity"], line["backordered_quantity"]) == (0, 4)
    assert line["status"] == "backordered" and r.json()["status"] == "backordered"
