"""The hand-off from a committed transaction to a line workflow survives the crash that
matters: the process that committed dies before it signals. Messages delivered twice,
or in the wrong order, change nothing."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
)

from backorders.contracts.line import AllocationRef, StartLine
from backorders.embedded.ports import free_port
from backorders.schemas import CancelIn, OrderIn, ProductIn, ReceiptIn
from backorders.services import inventory, orders, outbox, receipts, unit_of_work
from handoff.deliver import OutboxDeliverer
from tests.support import (
    HandedOff,
    check_invariants,
    eventually,
    rows,
    scalar,
    start_worker,
    wait_settled,
)
from workflows.line import LineWorkflow


def _order(number: str, sku: str, quantity: int, tier: str = "standard") -> OrderIn:
    return OrderIn.model_validate({
        "channel": "web", "order_number": number,
        "customer": {"id": "c-1", "tier": tier},
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": "5.00"}],
    })


async def _undelivered(db) -> int:
    return await scalar(db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL")


async def test_relay_starts_lines_and_delivers_allocations_the_writer_never_handed_off(
    db, worker, settings
):
    # Call the services the way the API does, then "die": never hand off after commit.
    await inventory.put_product(db, "HAND-1", ProductIn())
    placed = await orders.place_order(db, _order("H-1", "HAND-1", 2), settings)
    line = (await rows(db, "SELECT id, workflow_id FROM order_lines"))[0]
    assert await _undelivered(db) == 1

    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, line.workflow_id)
    await eventually(lambda: _undelivered(db), lambda n: n == 0, what="relay to start the line")
    state = await handle.query(LineWorkflow.state)
    assert (state.status, state.waiting_quantity) == ("backordered", 2)

    handed = HandedOff()
    await receipts.receive(db, ReceiptIn(receipt_id="HR-1", sku="HAND-1", quantity=2),
                           settings, hand_off=handed)
    assert handed.ids  # the writer was supposed to deliver these, and did not
    final = await handle.result()
    assert (final.status, final.shipped_quantity) == ("dispatched", 2)
    assert placed.created
    await check_invariants(db)


async def test_large_receipts_go_straight_to_the_relay(db, worker, settings):
    small = settings.model_copy(update={"outbox_inline_limit": 2})
    await inventory.put_product(db, "HAND-2", ProductIn())
    for n in range(5):
        await orders.place_order(db, _order(f"L-{n}", "HAND-2", 1), small)
    handed = HandedOff()
    await receipts.receive(db, ReceiptIn(receipt_id="BIG", sku="HAND-2", quantity=5), small,
                           hand_off=handed)
    assert handed.ids == []  # too many to deliver inline: left to the relay, at once
    due = await scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'line.allocated' "
                           "AND available_at <= created_at")
    assert due == 5
    await wait_settled(db)
    assert await scalar(db, "SELECT sum(shipped_quantity) FROM order_lines") == 5


async def test_a_message_delivered_twice_is_applied_once(db, worker, settings):
    await inventory.put_product(db, "HAND-3", ProductIn())
    await orders.place_order(db, _order("D-1", "HAND-3", 3), settings)
    await eventually(lambda: _undelivered(db), lambda n: n == 0)
    got = HandedOff()
    await receipts.receive(db, ReceiptIn(receipt_id="DR-1", sku="HAND-3", quantity=1),
                           settings, hand_off=got)
    deliverer = OutboxDeliverer(db, worker.client, settings)
    for _ in range(3):  # the writer delivers, crashes before marking it, and retries
        async with db.begin() as conn:
            await conn.execute(sa.text("UPDATE outbox SET delivered_at = NULL"))
        await deliverer.deliver(got.ids)
    line = (await rows(db, "SELECT workflow_id FROM order_lines"))[0]
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, line.workflow_id)
    state = await eventually(lambda: handle.query(LineWorkflow.state),
                             lambda s: s.shipped_quantity == 1)
    assert state.waiting_quantity == 2 and len(state.allocations) == 1
    await wait_settled(db)
    assert await scalar(db, "SELECT sum(handovers) FROM sim_warehouse_tasks") == 1
    await check_invariants(db)


async def test_the_relay_starts_the_highest_tier_customers_lines_first_then_the_oldest(
        db, temporal_env, settings):
    await inventory.put_product(db, "HAND-P", ProductIn())
    placed = {}
    for number, tier in [("P-STD-1", "standard"), ("P-GOLD", "gold"), ("P-STD-2", "standard"),
                         ("P-PLAT", "platinum")]:
        placed[number] = await orders.place_order(db, _order(number, "HAND-P", 1, tier), settings,
                                                  hand_off=unit_of_work.TO_RELAY)
    one_at_a_time = settings.model_copy(update={"outbox_batch_size": 1})
    async with start_worker(temporal_env.client, db, settings, relay=False) as running:
        deliverer = OutboxDeliverer(db, running.client, one_at_a_time)
        order = []
        for _ in placed:
            assert (await deliverer.deliver()).claimed == 1
            order.append((await rows(db, """
                SELECT l.order_id FROM outbox o JOIN order_lines l ON l.id = o.line_id
                WHERE o.delivered_at IS NOT NULL ORDER BY o.delivered_at DESC LIMIT 1"""))[0]
                .order_id)
    assert order == [placed[n].order_id for n in ("P-PLAT", "P-GOLD", "P-STD-1", "P-STD-2")]


async def test_a_cancel_that_overtakes_its_allocation_wins(db, temporal_env, settings):
    await inventory.put_product(db, "HAND-4", ProductIn())
    async with start_worker(temporal_env.client, db, settings, relay=False) as running:
        deliverer = OutboxDeliverer(db, running.client, settings)
        placed = await orders.place_order(db, _order("O-1", "HAND-4", 2), settings,
                                          hand_off=deliverer.deliver)
        allocated, cancelled = HandedOff(), HandedOff()
        await receipts.receive(db, ReceiptIn(receipt_id="OR-1", sku="HAND-4", quantity=2),
                               settings, hand_off=allocated)
        await orders.cancel_order(db, placed.order_id, CancelIn(reason="test"), settings,
                                  hand_off=cancelled)
        # Deliver the cancellation first, then the allocation it cancelled.
        await deliverer.deliver(cancelled.ids)
        await deliverer.deliver(allocated.ids)
        line = (await rows(db, "SELECT workflow_id FROM order_lines"))[0]
        final = await running.client.get_workflow_handle_for(
            LineWorkflow.run, line.workflow_id).result()
    assert (final.status, final.cancelled_quantity, final.waiting_quantity) == ("cancelled", 2, 0)
    assert [a.status for a in final.allocations] == ["cancelled"]
    assert await scalar(db, "SELECT count(*) FROM sim_warehouse_tasks") == 0  # never picked
    assert await scalar(db, "SELECT on_hand - reserved FROM stock") == 2  # back on the shelf
    await check_invariants(db)


async def test_messages_that_keep_failing_go_dead_and_ops_can_replay_them(db, api, worker,
                                                                          settings):
    await inventory.put_product(db, "HAND-5", ProductIn())
    placed = HandedOff()
    await orders.place_order(db, _order("F-1", "HAND-5", 1), settings, hand_off=placed)
    # Temporal unreachable: every attempt fails until the message is declared dead.
    nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    failing = OutboxDeliverer(db, nowhere, settings.model_copy(
        update={"outbox_max_attempts": 2}))
    for _ in range(2):
        report = await failing.deliver(placed.ids)
        assert report.failed == 1
    dead = (await api.get("/ops/outbox", params={"state": "dead"})).json()
    assert dead["total"] == 1
    message = dead["items"][0]
    assert message["attempts"] == 2 and message["last_error"]

    r = await api.post(f"/ops/outbox/{message['id']}/replay")
    assert r.status_code == 200, r.text
    assert r.json()["delivered_at"] is not None and r.json()["dead_at"] is None
    again = await api.post(f"/ops/outbox/{message['id']}/replay")
    assert again.status_code == 409 and again.json()["field"] == "message_id"
    missing = await api.post("/ops/outbox/999999/replay")
    assert missing.status_code == 404
    line = (await rows(db, "SELECT workflow_id FROM order_lines"))[0]
    state = await worker.client.get_workflow_handle(line.workflow_id).describe()
    assert state.id == line.workflow_id
    assert uuid.UUID(message["line_id"])


async def test_a_message_for_a_line_that_does_not_exist_goes_dead_without_holding_up_others(
    db, worker, settings
):
    """The outbox has no foreign key to lines: a message naming no line (a bug, a hand
    edit) must fail like any undeliverable one, not break the batch it was claimed in."""
    await inventory.put_product(db, "HAND-6", ProductIn())
    placed = HandedOff()
    await orders.place_order(db, _order("G-1", "HAND-6", 1), settings, hand_off=placed)
    ghost = uuid.uuid4()
    async with db.begin() as conn:
        ids = await outbox.enqueue(conn, [(ghost, StartLine())], settings)
        ids += await outbox.enqueue(conn, [(ghost, AllocationRef(
            allocation_id=str(uuid.uuid4()), quantity=1, source="receipt",
            receipt_id="GHOST"))], settings)
    deliverer = OutboxDeliverer(db, worker.client, settings.model_copy(
        update={"outbox_max_attempts": 1}))
    report = await deliverer.deliver(placed.ids + ids)
    assert (report.claimed, report.delivered, report.dead) == (3, 1, 2)
    dead = await rows(db, "SELECT line_id, last_error FROM outbox WHERE dead_at IS NOT NULL")
    assert {r.line_id for r in dead} == {ghost}
    assert all(f"no order line {ghost}" in r.last_error for r in dead)
    line = (await rows(db, "SELECT workflow_id FROM order_lines"))[0]
    assert (await worker.client.get_workflow_handle(line.workflow_id).describe()).id


class _CountingCalls(Interceptor):
    """Records which client calls the deliverer makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        calls = self.calls

        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> Any:
                calls.append("signal_with_start" if input.start_signal else "start")
                return await super().start_workflow(input)

            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                calls.append("signal")
                await super().signal_workflow(input)

        return Outbound(next)


async def test_a_running_line_gets_a_plain_signal_and_an_unstarted_one_is_started_by_it(
    db, worker, settings
):
    counting = _CountingCalls()
    config = worker.client.config()
    config["interceptors"] = [counting]
    client = Client(**config)
    deliverer = OutboxDeliverer(db, client, settings)
    await inventory.put_product(db, "HAND-5", ProductIn())
    await orders.place_order(db, _order("P-1", "HAND-5", 1), settings)
    await eventually(lambda: _undelivered(db), lambda n: n == 0, what="the line to start")

    # Running: one plain signal, no signal-with-start (which reads the line's input).
    got = HandedOff()
    await receipts.receive(db, ReceiptIn(receipt_id="PR-1", sku="HAND-5", quantity=1),
                           settings, hand_off=got)
    assert (await deliverer.deliver(got.ids)).delivered == 1
    assert counting.calls == ["signal"]

    # Not started yet: the signal finds no line, and the signal-with-start starts it.
    placed = await orders.place_order(db, _order("P-2", "HAND-5", 1), settings)
    got = HandedOff()
    await receipts.receive(db, ReceiptIn(receipt_id="PR-2", sku="HAND-5", quantity=1),
                           settings, hand_off=got)
    async with db.begin() as conn:  # keep the relay off both messages
        await conn.execute(sa.text("UPDATE outbox SET available_at = now() + interval '1 hour' "
                                   "WHERE delivered_at IS NULL"))
    counting.calls.clear()
    assert (await deliverer.deliver(got.ids)).delivered == 1
    assert counting.calls == ["signal", "signal_with_start"]
    line = (await rows(db, "SELECT workflow_id FROM order_lines WHERE order_id = :o",
                       o=placed.order_id))[0]
    handle = worker.client.get_workflow_handle_for(LineWorkflow.run, line.workflow_id)
    final = await handle.result()
    assert (final.status, final.shipped_quantity) == ("dispatched", 1)
