"""Graceful shutdown with real processes: a worker told to stop (SIGTERM) finishes the
warehouse step it is running before it exits, and the API finishes the request it is
serving; nothing is cut off, retried or lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from temporalio.api.enums.v1 import EventType

from api.app import create_app
from backorders.domain.access import Role
from backorders.embedded.ports import free_port, port_in_use
from tests.support import (
    api_client,
    bearer,
    eventually,
    line_of,
    make_product,
    new_key,
    place,
    start_worker,
)

ROOT = Path(__file__).resolve().parent.parent


def _env(settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": settings.libpq_url,
            "TEMPORAL_ADDRESS": settings.temporal_address, "TASK_QUEUE": settings.task_queue,
            "EMBEDDED_STACK": "1", "LOG_LEVEL": "INFO", **extra}


async def _activity_events(client, workflow_id: str, name: str) -> list[str]:
    """The event types of `name`'s activity tasks in the workflow's history, in order."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = {e.event_id for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == name}
    found = []
    for e in history.events:
        attrs = None
        for field in ("activity_task_started_event_attributes",
                      "activity_task_completed_event_attributes",
                      "activity_task_failed_event_attributes",
                      "activity_task_timed_out_event_attributes",
                      "activity_task_canceled_event_attributes"):
            if e.HasField(field):
                attrs = getattr(e, field)
                break
        if attrs is not None and attrs.scheduled_event_id in scheduled:
            found.append(EventType.Name(e.event_type))
    return found


async def test_a_stopping_worker_finishes_the_warehouse_step_it_is_running(
        client, on_server, db, tmp_path):
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")], cwd=ROOT, stdout=log, stderr=log,
        env=_env(on_server, WAREHOUSE_PICK_SECONDS="4", WAREHOUSE_PACK_SECONDS="0",
                 WAREHOUSE_CARRIER_SECONDS="0", WORKER_GRACEFUL_SHUTDOWN_SECONDS="30",
                 OUTBOX_POLL_SECONDS="0.2"))
    try:
        app = create_app(on_server, engine=db, client=client)
        async with api_client(app, db, on_server) as api:
            await make_product(api, "SD-1", on_hand=1)
            order = await place(api, "SD-ORDER", [("SD-1", 1)])
            workflow_id = order["lines"][0]["workflow_id"]
            await eventually(lambda: _activity_events(client, workflow_id, "pick"),
                             lambda events: "EVENT_TYPE_ACTIVITY_TASK_STARTED" in events,
                             what="the pick to start", timeout=60)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 60) == 0
            assert await _activity_events(client, workflow_id, "pick") == [
                "EVENT_TYPE_ACTIVITY_TASK_STARTED", "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"]
            # Another worker takes the line from where the stopped one left it.
            async with start_worker(client, db, on_server):
                line = await eventually(lambda: line_of(api, order),
                                        lambda line: line["status"] == "dispatched",
                                        what="the line to ship", timeout=60)
            assert line["shipped_quantity"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert b"worker stopping" in (tmp_path / "worker.log").read_bytes()


async def test_a_stopping_api_finishes_the_request_it_is_serving(on_server, db, tmp_path):
    port = free_port()
    key = await new_key(db, on_server, Role.ADMIN)
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "30"],
        cwd=ROOT, stdout=log, stderr=log, env=_env(on_server))
    try:
        await eventually(lambda: asyncio.to_thread(port_in_use, port, "127.0.0.1"),
                         what="the API to listen", timeout=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=bearer(key),
                                     timeout=30) as http:
            r = await http.put("/products/SD-2", json={})
            assert r.status_code == 201, r.text
            # Hold the SKU's stock row, so the receipt waits inside the API for it.
            async with db.connect() as holder:
                transaction = await holder.begin()
                await holder.execute(sa.text(
                    "INSERT INTO stock (sku) VALUES ('SD-2') ON CONFLICT DO NOTHING"))
                await holder.execute(sa.text("SELECT 1 FROM stock WHERE sku = 'SD-2' FOR UPDATE"))
                receipt = asyncio.create_task(http.post("/receipts", json={
                    "receipt_id": f"SD-R-{uuid.uuid4().hex[:6]}", "sku": "SD-2", "quantity": 3}))
                await asyncio.sleep(1.0)
                assert not receipt.done()
                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(1.0)
                assert proc.poll() is None, "the API left before its request was answered"
                await transaction.commit()
            answered = await receipt
        assert answered.status_code == 201, answered.text
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert await asyncio.to_thread(proc.wait, 30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    async with db.connect() as conn:
        on_hand = (await conn.execute(sa.text(
            "SELECT on_hand FROM stock WHERE sku = 'SD-2'"))).scalar_one()
    assert on_hand == 3
    assert b"Finished server process" in (tmp_path / "api.log").read_bytes()
