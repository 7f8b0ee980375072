"""The line workflow on Temporal's time-skipping server: days of waiting in milliseconds,
state visible through its query and search attributes."""

from __future__ import annotations

import json
from datetime import timedelta

from backorders import search_attributes as keys
from tests.support import make_product, place, receive
from workflows.line import LineWorkflow


async def test_a_line_waits_days_for_stock_then_ships(api, worker, db, temporal_env):
    await make_product(api, "SLOW-1")
    order = await place(api, "WAIT-1", [("SLOW-1", 3)], customer="patient", tier="gold")
    line = order["lines"][0]
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, line["workflow_id"])

    await temporal_env.sleep(timedelta(days=5))
    state = await handle.query(LineWorkflow.state)
    assert (state.status, state.waiting_quantity, state.shipped_quantity) == ("backordered", 3, 0)
    described = await handle.describe()
    attrs = described.typed_search_attributes
    assert attrs.get(keys.SKU) == "SLOW-1"
    assert attrs.get(keys.ORDER_NUMBER) == "WAIT-1"
    assert attrs.get(keys.CUSTOMER_ID) == "patient"
    assert attrs.get(keys.CUSTOMER_TIER) == "gold"
    assert attrs.get(keys.BACKORDER_STATUS) == "backordered"

    await receive(api, "LATE-1", "SLOW-1", 1)
    await temporal_env.sleep(timedelta(days=2))
    await receive(api, "LATE-2", "SLOW-1", 2)
    result = await handle.result()

    assert (result.status, result.shipped_quantity, result.waiting_quantity) == ("dispatched", 3, 0)
    assert [a.receipt_id for a in result.allocations] == ["LATE-1", "LATE-2"]
    assert all(a.tracking_number for a in result.allocations)
    kinds = [e.kind for e in result.timeline]
    assert kinds[0] == "backordered" and kinds[-1] == "closed"
    assert kinds.count("dispatched") == 2
    waited = next(e.at for e in result.timeline if e.kind == "allocated") - result.timeline[0].at
    assert waited >= timedelta(days=5)
    final = (await handle.describe()).typed_search_attributes
    assert final.get(keys.BACKORDER_STATUS) == "dispatched"


async def test_the_query_shows_each_step_as_it_happens(api, worker, db):
    await make_product(api, "STEPS", on_hand=1)
    order = await place(api, "STEP-1", [("STEPS", 2)])
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run,
                                                   order["lines"][0]["workflow_id"])
    from tests.support import eventually

    state = await eventually(lambda: handle.query(LineWorkflow.state),
                             lambda s: s.shipped_quantity == 1, what="intake part to ship")
    assert state.status == "backordered" and state.waiting_quantity == 1
    kinds = [e.kind for e in state.timeline if e.kind != "notification"]
    assert kinds[:2] == ["backordered", "allocated"]
    assert kinds[2:] == ["picking", "packed", "awaiting_shipment", "dispatched"]


async def test_backorder_detail_shows_the_timeline_from_the_database(api, worker, db):
    await make_product(api, "DETAIL")
    order = await place(api, "DET-1", [("DETAIL", 2)])
    line_id = order["lines"][0]["id"]
    detail = (await api.get(f"/backorders/{line_id}")).json()
    assert detail["queue_position"] == 1 and detail["backordered_quantity"] == 2
    assert [e["kind"] for e in detail["timeline"]] == ["backordered"]

    await receive(api, "DET-R", "DETAIL", 2)
    handle = worker.client.get_workflow_handle(order["lines"][0]["workflow_id"])
    await handle.result()
    detail = (await api.get(f"/backorders/{line_id}")).json()
    assert detail["status"] == "dispatched" and detail["queue_position"] is None
    assert [e["kind"] for e in detail["timeline"]] == [
        "backordered", "allocated", "picking", "packed", "awaiting_shipment", "dispatched"]
    assert detail["allocations"][0]["tracking_number"].startswith("SIM")
    listed = (await api.get("/backorders", params={"status": "dispatched"})).json()
    assert [i["line_id"] for i in listed["items"]] == [line_id]


async def test_search_status_changes_only_when_ops_view_of_the_line_does(api, worker, db):
    """Every upsert rewrites the workflow's visibility record, so the warehouse steps show
    as `allocated` and the status starts as the workflow was started with it."""
    await make_product(api, "SEEN")
    order = await place(api, "SEEN-1", [("SEEN", 2)])
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run,
                                                   order["lines"][0]["workflow_id"])
    await receive(api, "SEEN-R", "SEEN", 2)
    result = await handle.result()
    assert result.status == "dispatched"

    history = await handle.fetch_history()
    upserted = [
        json.loads(fields["BackorderStatus"].data)
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        and "BackorderStatus" in (fields := e.upsert_workflow_search_attributes_event_attributes
                                  .search_attributes.indexed_fields)
    ]
    assert upserted == ["allocated", "dispatched"]
    assert (await handle.describe()).typed_search_attributes.get(
        keys.BACKORDER_STATUS) == "dispatched"
