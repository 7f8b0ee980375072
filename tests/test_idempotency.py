"""Orders and receipts carry idempotency keys: a replay changes nothing and answers the
same; a different payload under the same key is refused."""

from __future__ import annotations

import asyncio

from tests.support import make_product, order_body, receive, scalar


async def test_replayed_order_answers_the_same_order_and_creates_nothing(api, db):
    await make_product(api, "IDEM", on_hand=1)
    body = order_body("N-1", [("IDEM", 3)])
    first = await api.post("/orders", json=body)
    again = await api.post("/orders", json=body)
    assert first.status_code == 201
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["lines"] == first.json()["lines"]
    assert await scalar(db, "SELECT count(*) FROM orders") == 1
    assert await scalar(db, "SELECT count(*) FROM order_lines") == 1
    assert await scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'line.start'") == 1
    inventory = (await api.get("/inventory/IDEM")).json()
    assert (inventory["reserved"], inventory["backordered"]) == (1, 2)


async def test_same_order_number_with_different_contents_is_refused(api, db):
    await make_product(api, "IDEM2", on_hand=5)
    await api.post("/orders", json=order_body("N-2", [("IDEM2", 1)]))
    r = await api.post("/orders", json=order_body("N-2", [("IDEM2", 2)]))
    assert r.status_code == 409
    assert r.json()["error"] == "order_conflict" and r.json()["field"] == "order_number"
    assert await scalar(db, "SELECT reserved FROM stock WHERE sku = 'IDEM2'") == 1


async def test_the_same_order_number_on_another_channel_is_another_order(api, db):
    await make_product(api, "IDEM3", on_hand=5)
    a = await api.post("/orders", json=order_body("N-3", [("IDEM3", 1)], channel="web"))
    b = await api.post("/orders", json=order_body("N-3", [("IDEM3", 1)], channel="retail"))
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


async def test_concurrent_duplicates_of_one_order_create_it_once(api, db):
    await make_product(api, "IDEM4", on_hand=2)
    body = order_body("N-4", [("IDEM4", 3)])
    answers = await asyncio.gather(*(api.post("/orders", json=body) for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await scalar(db, "SELECT count(*) FROM order_lines") == 1
    assert await scalar(db, "SELECT reserved FROM stock WHERE sku = 'IDEM4'") == 2


async def test_replayed_receipt_allocates_nothing_more_and_answers_the_same(api, db):
    await make_product(api, "IDEM5")
    await api.post("/orders", json=order_body("W-1", [("IDEM5", 2)]))
    await api.post("/orders", json=order_body("W-2", [("IDEM5", 2)]))
    first = await receive(api, "GRN-1", "IDEM5", 3)
    again = await api.post("/receipts", json={"receipt_id": "GRN-1", "sku": "IDEM5",
                                               "quantity": 3})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert (await api.get("/receipts/GRN-1")).json() == first
    assert await scalar(db, "SELECT count(*) FROM allocations WHERE receipt_id = 'GRN-1'") == 2
    assert await scalar(db, "SELECT on_hand FROM stock WHERE sku = 'IDEM5'") == 3


async def test_receipt_id_reused_for_different_goods_is_refused(api, db):
    await make_product(api, "IDEM6")
    await receive(api, "GRN-2", "IDEM6", 3)
    r = await api.post("/receipts", json={"receipt_id": "GRN-2", "sku": "IDEM6", "quantity": 4})
    assert r.status_code == 409 and r.json()["field"] == "receipt_id"
    assert await scalar(db, "SELECT on_hand FROM stock WHERE sku = 'IDEM6'") == 3


async def test_concurrent_replays_of_one_receipt_apply_it_once(api, db):
    await make_product(api, "IDEM7")
    await api.post("/orders", json=order_body("W-7", [("IDEM7", 5)]))
    body = {"receipt_id": "GRN-7", "sku": "IDEM7", "quantity": 4}
    answers = await asyncio.gather(*(api.post("/receipts", json=body) for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert await scalar(db, "SELECT on_hand FROM stock WHERE sku = 'IDEM7'") == 4
    assert await scalar(db, "SELECT sum(quantity) FROM allocations WHERE sku = 'IDEM7'") == 4
