"""Cancelling releases what has not left: waiting units leave the queue, allocated units
go to the next line in it, and anything already handed to the carrier stays shipped."""

from __future__ import annotations

import pytest

from tests.support import (
    check_invariants,
    eventually,
    line_of,
    make_product,
    place,
    receive,
    scalar,
    wait_settled,
)
from workflows.line import LineWorkflow


async def test_cancelling_a_waiting_line_takes_it_out_of_the_queue(api, worker, db):
    await make_product(api, "CX-1")
    a = await place(api, "X-1", [("CX-1", 2)])
    b = await place(api, "X-2", [("CX-1", 1)])
    r = await api.post(f"/orders/{a['id']}/cancel", json={"reason": "customer changed mind"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["lines"][0]["cancelled_quantity"] == 2
    assert r.json()["cancel_reason"] == "customer changed mind"

    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, a["lines"][0]["workflow_id"])
    final = await handle.result()
    assert (final.status, final.cancelled_quantity, final.waiting_quantity) == ("cancelled", 2, 0)

    receipt = await receive(api, "R-X", "CX-1", 5)
    assert [x["order_id"] for x in receipt["allocations"]] == [b["id"]]
    await wait_settled(db)
    await check_invariants(db)


@pytest.mark.warehouse(pick=60)
async def test_cancelling_releases_an_allocation_to_the_next_waiting_line(api, db, settings):
    # A slow pick keeps the allocation in the warehouse, where cancelling can take it back.
    await make_product(api, "CX-2", on_hand=2)
    first = await place(api, "Y-1", [("CX-2", 2)])
    second = await place(api, "Y-2", [("CX-2", 2)])
    assert first["lines"][0]["fulfillable_quantity"] == 2
    assert second["lines"][0]["backordered_quantity"] == 2

    r = await api.post(f"/orders/{first['id']}/cancel", json={})
    assert r.status_code == 200
    line = r.json()["lines"][0]
    assert (line["cancelled_quantity"], line["in_progress_quantity"]) == (2, 0)

    moved = await line_of(api, second)
    assert (moved["backordered_quantity"], moved["in_progress_quantity"]) == (0, 2)
    assert moved["status"] in ("allocated", "picking")
    assert await scalar(
        db, "SELECT count(*) FROM allocations WHERE source = 'release' AND line_id = :l",
        l=second["lines"][0]["id"],
    ) == 1
    inventory = (await api.get("/inventory/CX-2")).json()
    assert (inventory["on_hand"], inventory["reserved"], inventory["backordered"]) == (2, 2, 0)
    await check_invariants(db)


async def test_cancelling_after_dispatch_changes_nothing(api, worker, db):
    await make_product(api, "CX-3", on_hand=1)
    order = await place(api, "Z-1", [("CX-3", 1)])
    await wait_settled(db)
    r = await api.post(f"/orders/{order['id']}/cancel")
    assert r.status_code == 200
    line = r.json()["lines"][0]
    assert (line["shipped_quantity"], line["cancelled_quantity"], line["status"]) == (
        1, 0, "dispatched")
    assert r.json()["status"] == "completed" and r.json()["cancelled_at"] is None


async def test_cancelling_one_line_keeps_the_rest_of_the_order(api, worker, db):
    await make_product(api, "CX-4")
    await make_product(api, "CX-5")
    order = await place(api, "Q-1", [("CX-4", 1), ("CX-5", 1)])
    keep, drop = order["lines"]
    r = await api.post(f"/orders/{order['id']}/cancel", json={"line_ids": [drop["id"]]})
    assert r.status_code == 200
    lines = {ln["id"]: ln for ln in r.json()["lines"]}
    assert lines[drop["id"]]["status"] == "cancelled"
    assert lines[keep["id"]]["status"] == "backordered"
    assert r.json()["status"] == "backordered"
    await receive(api, "R-Q", "CX-4", 1)
    done = await eventually(lambda: line_of(api, order, 0),
                            lambda ln: ln["status"] == "dispatched")
    assert done["shipped_quantity"] == 1


async def test_cancelling_twice_is_harmless(api, db):
    await make_product(api, "CX-6")
    order = await place(api, "T-1", [("CX-6", 3)])
    first = await api.post(f"/orders/{order['id']}/cancel")
    second = await api.post(f"/orders/{order['id']}/cancel")
    assert first.json() == second.json()
    assert await scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'line.cancelled'") == 1
    assert await scalar(db, "SELECT backordered FROM stock WHERE sku = 'CX-6'") == 0
