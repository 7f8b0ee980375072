"""Pick, pack, label and ship are safe to retry at any point, including after a crash
between the carrier hand-over and recording it: nothing ships twice, and a cancellation
cannot take back a parcel the carrier already has."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.dispatch import DispatchActivities
from activities.warehouse import WarehouseTask
from backorders.contracts.activities import StepInput
from backorders.domain.lifecycle import AllocationStatus
from backorders.schemas import CancelIn, OrderIn, ProductIn, StockCountIn
from backorders.services import dispatch, inventory, orders
from tests.support import check_invariants, rows, scalar
from worker import simulated_warehouse


@pytest.fixture
async def allocated(db, settings):
    """An order of 2 fulfilled from stock: its allocation, ready for dispatch."""
    await inventory.put_product(db, "DSP", ProductIn())
    await inventory.count_stock(db, "DSP", StockCountIn(on_hand=5), settings)
    placed = await orders.place_order(db, OrderIn.model_validate({
        "channel": "web", "order_number": "DSP-1", "customer": {"id": "c"},
        "lines": [{"sku": "DSP", "quantity": 2, "unit_price": "1.00"}],
    }), settings)
    a = (await rows(db, "SELECT id, line_id FROM allocations"))[0]
    return placed.order_id, StepInput(str(a.id), str(a.line_id), "DSP", 2)


@pytest.fixture
def activities(db, settings):
    return DispatchActivities(db, simulated_warehouse(db, settings))


async def _run(activities, name: str, step: StepInput):
    return await ActivityEnvironment().run(getattr(activities, name), step)


async def test_every_step_repeated_ships_once(db, allocated, activities):
    _, step = allocated
    for name in ("pick", "pick", "pack", "pack", "label", "label"):
        await _run(activities, name, step)
    first = await _run(activities, "ship", step)
    second = await _run(activities, "ship", step)
    assert first.status == second.status == "dispatched"
    assert first.tracking_number == second.tracking_number
    assert await scalar(db, "SELECT handovers FROM sim_warehouse_tasks") == 1
    assert await scalar(db, "SELECT on_hand FROM stock") == 3
    assert await scalar(db, "SELECT shipped_quantity FROM order_lines") == 2
    assert await scalar(db, "SELECT count(*) FROM inventory_movements WHERE reason = 'dispatch'") == 1
    await check_invariants(db)


async def test_a_crash_after_the_hand_over_is_finished_by_the_retry(db, allocated, activities,
                                                                    settings):
    _, step = allocated
    for name in ("pick", "pack", "label"):
        await _run(activities, name, step)
    # The first attempt got as far as the carrier, then the worker died.
    allocation_id = uuid.UUID(step.allocation_id)
    await dispatch.begin_dispatch(db, allocation_id)
    warehouse = simulated_warehouse(db, settings)
    tracking = await warehouse.hand_over(WarehouseTask(allocation_id, uuid.UUID(step.line_id),
                                                       "DSP", 2))
    assert await scalar(db, "SELECT status FROM allocations") == "awaiting_shipment"

    retried = await _run(activities, "ship", step)
    assert (retried.status, retried.tracking_number) == ("dispatched", tracking)
    assert await scalar(db, "SELECT handovers FROM sim_warehouse_tasks") == 1
    await check_invariants(db)


async def test_a_parcel_the_carrier_has_cannot_be_cancelled(db, allocated, activities, settings):
    order_id, step = allocated
    for name in ("pick", "pack", "label"):
        await _run(activities, name, step)
    await dispatch.begin_dispatch(db, uuid.UUID(step.allocation_id))  # hand-over under way
    result = await orders.cancel_order(db, order_id, CancelIn(), settings)
    assert result.cancelled_quantity == 0
    shipped = await _run(activities, "ship", step)
    assert shipped.status == "dispatched"
    await check_invariants(db)


async def test_a_cancelled_allocation_stops_at_the_next_step(db, allocated, activities, settings):
    order_id, step = allocated
    await _run(activities, "pick", step)
    await orders.cancel_order(db, order_id, CancelIn(), settings)
    for name in ("pack", "label", "ship"):
        assert (await _run(activities, name, step)).status == "cancelled"
    await ActivityEnvironment().run(activities.release, step)
    task = (await rows(db, "SELECT picked_at, packed_at, handovers, released_at "
                          "FROM sim_warehouse_tasks"))[0]
    assert task.picked_at and task.released_at and not task.packed_at and task.handovers == 0
    assert await scalar(db, "SELECT reserved FROM stock") == 0
    await check_invariants(db)


async def test_steps_out_of_order_fail_without_retry(db, allocated, activities):
    _, step = allocated
    with pytest.raises(ApplicationError) as raised:
        await _run(activities, "pack", step)
    assert raised.value.non_retryable and raised.value.type == "OutOfOrder"
    missing = StepInput(str(uuid.uuid4()), step.line_id, "DSP", 1)
    with pytest.raises(ApplicationError) as raised:
        await _run(activities, "pick", missing)
    assert raised.value.type == "AllocationNotFound"
    assert await scalar(db, "SELECT status FROM allocations") == AllocationStatus.ALLOCATED
