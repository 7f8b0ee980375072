"""The line workflow at its limits: a line received in many small lots keeps its history
short by continuing as new, and a dispatch the ledger refuses fails the line visibly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from backorders.schemas import OrderIn, ProductIn, ReceiptIn
from backorders.services import inventory, orders, receipts
from handoff.deliver import OutboxDeliverer
from tests.support import check_invariants, rows, start_worker, wait_settled
from workflows.line import LineWorkflow


async def test_a_line_received_in_many_lots_continues_as_new_and_keeps_its_count(
    db, temporal_env, settings
):
    short = settings.model_copy(update={"line_history_limit": 40})
    await inventory.put_product(db, "LOTS", ProductIn())
    async with start_worker(temporal_env.client, db, short) as running:
        deliverer = OutboxDeliverer(db, running.client, short)
        await orders.place_order(db, OrderIn.model_validate({
            "channel": "web", "order_number": "LOTS-1", "customer": {"id": "c"},
            "lines": [{"sku": "LOTS", "quantity": 8, "unit_price": "1.00"}],
        }), short, hand_off=deliverer.deliver)
        for n in range(8):
            await receipts.receive(db, ReceiptIn(receipt_id=f"LOT-{n}", sku="LOTS", quantity=1),
                                   short, hand_off=deliverer.deliver)
            await wait_settled(db)
        workflow_id = (await rows(db, "SELECT workflow_id FROM order_lines"))[0].workflow_id
        handle = running.client.get_workflow_handle_for(LineWorkflow.run, workflow_id)
        result = await handle.result()

    assert (result.status, result.shipped_quantity, result.waiting_quantity) == ("dispatched", 8, 0)
    assert len(result.allocations) == 8
    assert "continued" in [e.kind for e in result.timeline]
    described = await temporal_env.client.get_workflow_handle(workflow_id).describe()
    assert described.raw_description.workflow_execution_info.first_run_id != described.run_id
    await check_invariants(db)


async def test_a_dispatch_the_ledger_refuses_fails_the_line_loudly(db, temporal_env, settings):
    await inventory.put_product(db, "LOST", ProductIn())
    from backorders.schemas import StockCountIn

    await inventory.count_stock(db, "LOST", StockCountIn(on_hand=1), settings)
    # The line's workflow starts, then someone deletes its allocation behind our back.
    await orders.place_order(db, OrderIn.model_validate({
        "channel": "web", "order_number": "LOST-1", "customer": {"id": "c"},
        "lines": [{"sku": "LOST", "quantity": 1, "unit_price": "1.00"}],
    }), settings, hand_off=OutboxDeliverer(db, temporal_env.client, settings).deliver)
    async with db.begin() as conn:
        await conn.execute(sa.text("DELETE FROM allocations"))
    async with start_worker(temporal_env.client, db, settings, relay=False) as running:
        workflow_id = (await rows(db, "SELECT workflow_id FROM order_lines"))[0].workflow_id
        with pytest.raises(WorkflowFailureError) as failed:
            await running.client.get_workflow_handle(workflow_id).result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DispatchFailed"
    assert "no allocation" in cause.message
