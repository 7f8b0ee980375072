"""The example every merchant asks about first, end to end through the API, the outbox,
the line workflows and the simulated warehouse."""

from __future__ import annotations

from tests.support import (
    check_invariants,
    eventually,
    line_of,
    make_product,
    place,
    receive,
    wait_settled,
)
from workflows.line import LineWorkflow


async def test_three_on_hand_two_orders_of_two_then_a_receipt_completes_b(api, worker, db):
    await make_product(api, "SKU-A", on_hand=3)

    a = await place(api, "A-1", [("SKU-A", 2)], customer="alice")
    b = await place(api, "B-1", [("SKU-A", 2)], customer="bob")

    assert (a["lines"][0]["fulfillable_quantity"], a["lines"][0]["backordered_quantity"]) == (2, 0)
    assert (b["lines"][0]["fulfillable_quantity"], b["lines"][0]["backordered_quantity"]) == (1, 1)
    assert b["lines"][0]["status"] == "backordered"
    assert b["status"] == "backordered"

    # A ships 2 and B ships 1 without waiting for B's missing unit.
    await wait_settled(db)
    line_a = await line_of(api, a)
    line_b = await line_of(api, b)
    assert (line_a["shipped_quantity"], line_a["status"]) == (2, "dispatched")
    assert (line_b["shipped_quantity"], line_b["backordered_quantity"]) == (1, 1)
    assert line_b["status"] == "backordered"
    inventory = (await api.get("/inventory/SKU-A")).json()
    assert inventory == {"sku": "SKU-A", "on_hand": 0, "reserved": 0, "available": 0,
                         "backordered": 1, "allocated": []}

    # B's workflow is still waiting, and says so.
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, line_b["workflow_id"])
    state = await handle.query(LineWorkflow.state)
    assert state.waiting_quantity == 1 and state.shipped_quantity == 1

    receipt = await receive(api, "GR-1", "SKU-A", 1)
    assert [(x["order_id"], x["quantity"]) for x in receipt["allocations"]] == [(b["id"], 1)]

    result = await handle.result()
    assert (result.shipped_quantity, result.waiting_quantity) == (2, 0)
    line_b = await eventually(lambda: line_of(api, b), lambda ln: ln["status"] == "dispatched")
    assert line_b["shipped_quantity"] == 2 and line_b["backordered_quantity"] == 0
    assert (await api.get(f"/orders/{b['id']}")).json()["status"] == "completed"
    await wait_settled(db)
    await check_invariants(db)
