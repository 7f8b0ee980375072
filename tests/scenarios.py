"""Line workflow scenarios whose histories are recorded for replay tests.

Each drives the real API, worker and warehouse and returns the workflow ids to keep."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from backorders.contracts import digest, forecast
from tests.support import eventually, make_product, order_body, place, receive, rows, wait_settled
from workflows.line import LineWorkflow

Scenario = Callable[[Any, Any, Any, Any], Awaitable[dict[str, str]]]


async def _finish(worker: Any, workflow_id: str) -> None:
    await worker.client.get_workflow_handle_for(LineWorkflow.run, workflow_id).result()


async def fulfilled_from_stock(api: Any, worker: Any, db: Any, env: Any) -> dict[str, str]:
    await make_product(api, "REC-1", on_hand=5)
    order = await place(api, "REC-1", [("REC-1", 2)])
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"fulfilled_from_stock": workflow_id}


async def backordered_then_partial_receipts(api: Any, worker: Any, db: Any, env: Any) -> dict[str, str]:
    await make_product(api, "REC-2", on_hand=1)
    order = await place(api, "REC-2", [("REC-2", 4)])
    workflow_id = order["lines"][0]["workflow_id"]
    await wait_settled(db)
    await receive(api, "REC-2-A", "REC-2", 1)
    await wait_settled(db)
    await receive(api, "REC-2-B", "REC-2", 5)
    await _finish(worker, workflow_id)
    return {"backordered_then_partial_receipts": workflow_id}


async def cancelled_while_waiting(api: Any, worker: Any, db: Any, env: Any) -> dict[str, str]:
    await make_product(api, "REC-3")
    order = await place(api, "REC-3", [("REC-3", 2)])
    await api.post(f"/orders/{order['id']}/cancel", json={"reason": "recorded"})
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"cancelled_while_waiting": workflow_id}


async def partly_shipped_then_cancelled(api: Any, worker: Any, db: Any, env: Any) -> dict[str, str]:
    await make_product(api, "REC-4", on_hand=1)
    order = await place(api, "REC-4", [("REC-4", 3)])
    await wait_settled(db)
    await api.post(f"/orders/{order['id']}/cancel", json={"reason": "recorded"})
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"partly_shipped_then_cancelled": workflow_id}


async def waited_weeks_then_delayed_and_shipped(api: Any, worker: Any, db: Any,
                                                env: Any) -> dict[str, str]:
    """Weekly updates, a tier escalation, a missed promise and a delay, then shipped."""
    await make_product(api, "REC-5")
    body = order_body("REC-5", [("REC-5", 2)], tier="gold")
    body["lines"][0]["promised_date"] = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    order = (await api.post("/orders", json=body)).json()
    line = order["lines"][0]
    await wait_settled(db)
    await env.sleep(timedelta(days=9))
    r = await api.post(f"/backorders/{line['id']}/delay", json={"reason": "supplier slipped"})
    assert r.status_code == 202, r.text
    await wait_settled(db)
    await receive(api, "REC-5-A", "REC-5", 2)
    await _finish(worker, line["workflow_id"])
    return {"waited_weeks_then_delayed_and_shipped": line["workflow_id"]}


async def quiet_hours_and_daily_digest(api: Any, worker: Any, db: Any,
                                       env: Any) -> dict[str, str]:
    """A message held on a timer for quiet hours; a day's updates sent as one digest."""
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now + timedelta(hours=2)).strftime("%H:%M")}
    await api.put("/customers/night/preferences", json={"quiet_hours": quiet})
    await api.put("/customers/daily/preferences", json={"digest": "daily"})
    await make_product(api, "REC-6")
    night = await place(api, "REC-6-N", [("REC-6", 1)], customer="night")
    daily = await place(api, "REC-6-D", [("REC-6", 1)], customer="daily")
    [queued] = await eventually(lambda: rows(
        db, "SELECT send_after FROM notifications WHERE customer_id = 'daily'"))
    await env.sleep(timedelta(days=1))
    await receive(api, "REC-6-A", "REC-6", 2)
    for order in (night, daily):
        await _finish(worker, order["lines"][0]["workflow_id"])
    digest_id = digest.workflow_id("daily", queued.send_after)
    await worker.client.get_workflow_handle(digest_id).result()
    return {"quiet_hours_line": night["lines"][0]["workflow_id"], "daily_digest": digest_id}


async def held_for_ship_complete_then_released(api: Any, worker: Any, db: Any,
                                               env: Any) -> dict[str, str]:
    """A ship-complete order: the line in stock holds until the backordered one is served."""
    await make_product(api, "REC-7", on_hand=3)
    await make_product(api, "REC-8")
    body = order_body("REC-7", [("REC-7", 2), ("REC-8", 1)])
    body["ship_complete"] = True
    order = (await api.post("/orders", json=body)).json()
    await eventually(lambda: rows(db, "SELECT 1 FROM outbox WHERE delivered_at IS NULL"),
                     lambda pending: not pending, what="the lines to hear they are held")
    await receive(api, "REC-8-A", "REC-8", 1)
    for line in order["lines"]:
        await _finish(worker, line["workflow_id"])
    held = next(line for line in order["lines"] if line["sku"] == "REC-7")
    return {"held_for_ship_complete_then_released": held["workflow_id"]}


async def redated_by_a_slipping_purchase_order(api: Any, worker: Any, db: Any,
                                               env: Any) -> dict[str, str]:
    """A date from a purchase order, moved out by a week (the customer told), then served."""
    await make_product(api, "REC-9")
    order = await place(api, "REC-9", [("REC-9", 2)])
    today = datetime.now(UTC).date()
    for slip in (3, 10):
        r = await api.put("/purchase-orders/REC-PO-9", json={
            "supplier": {"id": "rec-supplier"},
            "lines": [{"sku": "REC-9", "quantity": 2,
                       "expected_at": (today + timedelta(days=slip)).isoformat()}]})
        assert r.status_code in (200, 201), r.text
        await wait_settled(db)
    await receive(api, "REC-9-A", "REC-9", 2, purchase_order="REC-PO-9")
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"redated_by_a_slipping_purchase_order": workflow_id}


async def forecast_run(api: Any, worker: Any, db: Any, env: Any) -> dict[str, str]:
    """The demand-forecast workflow over two products, one batch each."""
    for sku in ("REC-F1", "REC-F2"):
        await make_product(api, sku, on_hand=3)
    workflow_id = f"demand-forecast-replay-{uuid.uuid4().hex[:8]}"
    await worker.client.execute_workflow(
        forecast.WORKFLOW_TYPE, forecast.ForecastRun(batch_size=1), id=workflow_id,
        task_queue=worker.settings.task_queue, result_type=forecast.RunResult)
    return {"forecast_run": workflow_id}


SCENARIOS: list[Scenario] = [
    fulfilled_from_stock,
    backordered_then_partial_receipts,
    cancelled_while_waiting,
    partly_shipped_then_cancelled,
    waited_weeks_then_delayed_and_shipped,
    quiet_hours_and_daily_digest,
    held_for_ship_complete_then_released,
    redated_by_a_slipping_purchase_order,
    forecast_run,
]
