"""Line workflow scenarios whose histories are recorded for replay tests.

Each drives the real API, worker and warehouse and returns the workflow ids to keep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.support import make_product, place, receive, wait_settled
from workflows.line import LineWorkflow

Scenario = Callable[[Any, Any, Any], Awaitable[dict[str, str]]]


async def _finish(worker: Any, workflow_id: str) -> None:
    await worker.client.get_workflow_handle_for(LineWorkflow.run, workflow_id).result()


async def fulfilled_from_stock(api: Any, worker: Any, db: Any) -> dict[str, str]:
    await make_product(api, "REC-1", on_hand=5)
    order = await place(api, "REC-1", [("REC-1", 2)])
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"fulfilled_from_stock": workflow_id}


async def backordered_then_partial_receipts(api: Any, worker: Any, db: Any) -> dict[str, str]:
    await make_product(api, "REC-2", on_hand=1)
    order = await place(api, "REC-2", [("REC-2", 4)])
    workflow_id = order["lines"][0]["workflow_id"]
    await wait_settled(db)
    await receive(api, "REC-2-A", "REC-2", 1)
    await wait_settled(db)
    await receive(api, "REC-2-B", "REC-2", 5)
    await _finish(worker, workflow_id)
    return {"backordered_then_partial_receipts": workflow_id}


async def cancelled_while_waiting(api: Any, worker: Any, db: Any) -> dict[str, str]:
    await make_product(api, "REC-3")
    order = await place(api, "REC-3", [("REC-3", 2)])
    await api.post(f"/orders/{order['id']}/cancel", json={"reason": "recorded"})
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"cancelled_while_waiting": workflow_id}


async def partly_shipped_then_cancelled(api: Any, worker: Any, db: Any) -> dict[str, str]:
    await make_product(api, "REC-4", on_hand=1)
    order = await place(api, "REC-4", [("REC-4", 3)])
    await wait_settled(db)
    await api.post(f"/orders/{order['id']}/cancel", json={"reason": "recorded"})
    workflow_id = order["lines"][0]["workflow_id"]
    await _finish(worker, workflow_id)
    return {"partly_shipped_then_cancelled": workflow_id}


SCENARIOS: list[Scenario] = [
    fulfilled_from_stock,
    backordered_then_partial_receipts,
    cancelled_while_waiting,
    partly_shipped_then_cancelled,
]
