"""Crashes and outages mid-flight, with real processes: the worker killed with SIGKILL,
the Temporal dev server stopped and started on its SQLite file, PostgreSQL restarted.
Each time every line must still ship exactly what it ordered, once, and the ledger must
balance. Slower than the suite, so they run with `make faults` (CI runs both)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from backorders.settings import Settings
from backorders.temporal import connect
from bench.infra import Infra
from tests.support import check_invariants, eventually, order_body, scalar

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

NAMESPACE = "faults"
SKU = "FAULT-1"
ON_HAND = 20
ORDERS = 30
UNITS_PER_ORDER = 3
TOTAL = ORDERS * UNITS_PER_ORDER
STEP_SECONDS = "0.5"
"""Each warehouse step takes this long, so a fault lands while parcels are in flight."""


@dataclass
class Stack:
    infra: Infra
    engine: AsyncEngine
    api: httpx.AsyncClient
    client: Client
    worker: subprocess.Popen[bytes]

    def start_worker(self) -> None:
        self.worker = self.infra.worker(
            NAMESPACE, WAREHOUSE_PICK_SECONDS=STEP_SECONDS, WAREHOUSE_PACK_SECONDS=STEP_SECONDS,
            WAREHOUSE_CARRIER_SECONDS=STEP_SECONDS, OUTBOX_POLL_SECONDS="0.2",
            OUTBOX_INLINE_GRACE_SECONDS="1")


@pytest.fixture
async def stack(tmp_path) -> AsyncIterator[Stack]:
    """PostgreSQL, the Temporal dev server, a worker and the API, each its own process."""
    infra = Infra(namespaces=[NAMESPACE], workdir=tmp_path)
    infra.start()
    engine = None
    try:
        _, port = infra.api(NAMESPACE)
        # Pre-ping: the test's own view must survive the PostgreSQL restart it causes.
        url = Settings(_env_file=None, database_url=infra.database_url).database_url
        engine = create_async_engine(url, pool_pre_ping=True)
        assert infra.temporal is not None
        client = await connect(Settings(_env_file=None, temporal_address=infra.temporal.address,
                                        temporal_namespace=NAMESPACE), attempts=120)
        headers = {"Authorization": f"Bearer {infra.admin_key(NAMESPACE)}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers=headers) as api:
            running = Stack(infra, engine, api, client, worker=None)  # type: ignore[arg-type]
            running.start_worker()
            yield running
    finally:
        if engine is not None:
            await engine.dispose()
        infra.shutdown()
        for log in sorted(tmp_path.glob("proc-*.log")):  # shown only when a test fails
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


async def place_orders(api: httpx.AsyncClient, first: int, count: int) -> None:
    for i in range(first, first + count):
        r = await api.post("/orders", json=order_body(
            f"F-{i}", [(SKU, UNITS_PER_ORDER)], customer=f"c{i % 7}",
            tier=("gold", "standard", "silver")[i % 3]))
        assert r.status_code == 201, r.text


async def receive(api: httpx.AsyncClient, receipt_id: str, quantity: int,
                  status: int = 201) -> None:
    r = await api.post("/receipts", json={"receipt_id": receipt_id, "sku": SKU,
                                          "quantity": quantity})
    assert r.status_code == status, r.text


async def start_workload(api: httpx.AsyncClient) -> None:
    """Stock for the first few orders, the rest backordered, a first receipt arriving."""
    assert (await api.put(f"/products/{SKU}", json={"allocation_policy": "priority"})
            ).status_code == 201
    assert (await api.put(f"/inventory/{SKU}", json={"on_hand": ON_HAND})).status_code == 200
    await place_orders(api, 0, ORDERS - 5)
    await receive(api, "GRN-1", 30)


async def handed_over(engine: AsyncEngine) -> int:
    return await scalar(engine, "SELECT count(*) FROM sim_warehouse_tasks "
                                "WHERE handed_over_at IS NOT NULL")


async def wait_mid_flight(engine: AsyncEngine) -> int:
    """Until the first parcels have shipped, while others are still in the warehouse."""
    await eventually(lambda: handed_over(engine), timeout=60, what="a first parcel to ship")
    in_flight = await scalar(engine, "SELECT count(*) FROM allocations "
                                     "WHERE status NOT IN ('dispatched', 'cancelled')")
    assert in_flight > 0, "everything shipped before the fault: the test proves nothing"
    return in_flight


async def finish_workload(api: httpx.AsyncClient) -> None:
    await place_orders(api, ORDERS - 5, 5)
    await receive(api, "GRN-2", TOTAL - ON_HAND - 30)
    await receive(api, "GRN-2", TOTAL - ON_HAND - 30, status=200)  # the ERP sends it again


async def everything_shipped_once(stack: Stack) -> None:
    engine = stack.engine

    async def all_shipped() -> bool:
        shipped = await scalar(engine, "SELECT coalesce(sum(shipped_quantity), 0) FROM order_lines")
        pending = await scalar(engine, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        return shipped == TOTAL and pending == 0

    await eventually(all_shipped, timeout=150, what="every unit to ship")
    await check_invariants(engine)
    assert await scalar(engine, "SELECT count(*) FROM orders") == ORDERS
    assert await scalar(engine, "SELECT sum(handovers) FROM sim_warehouse_tasks") == \
        await scalar(engine, "SELECT count(*) FROM allocations WHERE status = 'dispatched'")
    assert await scalar(engine, "SELECT on_hand FROM stock WHERE sku = :sku", sku=SKU) == 0
    assert await scalar(engine, "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL") == 0
    async with engine.connect() as conn:
        workflow_ids = (await conn.execute(sa.text(
            "SELECT workflow_id FROM order_lines WHERE workflow_id IS NOT NULL"))).scalars().all()
    assert len(workflow_ids) == ORDERS
    # Every line's workflow completes: the database says shipped as the last step commits,
    # and the workflow still has its dispatch message to send, so wait for it to close.
    async def closed(workflow_id: str) -> None:
        handle = stack.client.get_workflow_handle(workflow_id)
        try:
            async with asyncio.timeout(60):
                await handle.result()
        except TimeoutError:
            pytest.fail(f"{workflow_id} still open: {await stuck_on(handle)}")
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED, workflow_id

    await asyncio.gather(*(closed(w) for w in workflow_ids))


async def every_payload_accounted_for(stack: Stack) -> None:
    """Every order taken in has its one accepted intake, written with it, and nothing
    else was received: a payload refused while the database was down (503) left nothing
    behind, for the sender to send again."""
    orders = await scalar(stack.engine, "SELECT count(*) FROM orders")
    accepted = await scalar(stack.engine, """
        SELECT count(DISTINCT order_id) FROM intakes
        WHERE state = 'accepted' AND reason IS NULL""")
    unmatched = await scalar(stack.engine, """
        SELECT count(*) FROM orders o WHERE NOT EXISTS (
            SELECT 1 FROM intakes i WHERE i.order_id = o.id AND i.state = 'accepted')""")
    assert (orders, accepted, unmatched) == (ORDERS, ORDERS, 0)
    assert await scalar(stack.engine, "SELECT count(*) FROM intakes WHERE state <> 'accepted'") == 0


async def stuck_on(handle: WorkflowHandle[Any, Any]) -> str:
    """What an open workflow waits on, so a failure here says why, not only that."""
    description = await handle.describe()
    pending = [f"{a.activity_type.name} attempt {a.attempt} "
               f"({PendingActivityState.Name(a.state)}): {a.last_failure.message or 'no failure'}"
               for a in description.raw_description.pending_activities]
    return "; ".join(pending) or f"no pending activity, status {description.status}"


async def test_killing_the_worker_mid_dispatch_loses_nothing_and_ships_nothing_twice(stack):
    await start_workload(stack.api)
    await wait_mid_flight(stack.engine)

    os.kill(stack.worker.pid, signal.SIGKILL)
    stack.worker.wait()
    # Orders and receipts keep coming while no worker runs.
    await finish_workload(stack.api)
    await asyncio.sleep(1)
    stack.start_worker()
    await wait_mid_flight(stack.engine)
    os.kill(stack.worker.pid, signal.SIGKILL)  # and once more, mid-recovery
    stack.worker.wait()
    stack.start_worker()

    await everything_shipped_once(stack)


async def test_restarting_temporal_mid_flight_loses_nothing(stack):
    await start_workload(stack.api)
    await wait_mid_flight(stack.engine)

    temporal = stack.infra.temporal
    assert temporal is not None
    temporal.stop()
    # The API still takes orders and receipts: they are committed with their messages,
    # and the relay hands them over once Temporal is back.
    await finish_workload(stack.api)
    pending = await scalar(stack.engine, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
    assert pending > 0
    await asyncio.sleep(2)
    temporal.start()

    await everything_shipped_once(stack)
    await every_payload_accounted_for(stack)
    assert stack.worker.poll() is None, "the worker should ride out a Temporal restart"


async def test_restarting_postgres_mid_flight_answers_503_then_resumes(stack):
    await start_workload(stack.api)
    await wait_mid_flight(stack.engine)

    postgres = stack.infra.postgres
    assert postgres is not None
    postgres.stop(mode="fast")
    for request in (stack.api.get(f"/inventory/{SKU}"),
                    stack.api.post("/orders", json=order_body("F-down", [(SKU, 1)]))):
        r = await request
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) > 0
        assert r.json()["error"] == "database_unavailable"
    await asyncio.sleep(3)
    postgres.start()

    await finish_workload(stack.api)
    await everything_shipped_once(stack)
    await every_payload_accounted_for(stack)
    assert stack.worker.poll() is None, "the worker should ride out a database restart"
