"""What needs a real Temporal server rather than the time-skipping one: the forecast's
Schedule (created, moved to a new cron, removed) and the deploy check that replays the
server's recent and running histories against the code about to roll out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from backorders.contracts import forecast
from backorders.contracts.line import WORKFLOW_TYPE, LineInput
from backorders.schedules import ensure_forecast_schedule
from tests.support import api_client, eventually, line_of, make_product, place, start_worker
from worker import _check_replay_command, check_replay


async def test_the_forecast_schedule_follows_the_configured_cron_and_goes_when_emptied(
        client, on_server):
    await ensure_forecast_schedule(client, on_server.model_copy(
        update={"forecast_schedule_cron": "0 3 * * *"}))
    handle = client.get_schedule_handle(forecast.SCHEDULE_ID)
    first = await handle.describe()
    assert first.schedule.action.workflow == forecast.WORKFLOW_TYPE
    assert {t.hour for t in first.info.next_action_times} == {3}

    await ensure_forecast_schedule(client, on_server.model_copy(
        update={"forecast_schedule_cron": "30 5 * * *"}))
    moved = await handle.describe()
    assert {(t.hour, t.minute) for t in moved.info.next_action_times} == {(5, 30)}

    await handle.pause(note="supplier audit")  # ops' pause survives the next deploy
    await ensure_forecast_schedule(client, on_server.model_copy(
        update={"forecast_schedule_cron": "30 5 * * *"}))
    state = (await handle.describe()).schedule.state
    assert state.paused and state.note == "supplier audit"

    await ensure_forecast_schedule(client, on_server.model_copy(
        update={"forecast_schedule_cron": ""}))
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert gone.value.status is RPCStatusCode.NOT_FOUND


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class ChangedLine:
    """A line workflow changed without `workflow.patched`: it waits on a timer first,
    where the running lines' histories scheduled activities or waited for signals."""

    @workflow.run
    async def run(self, line: LineInput) -> None:
        await workflow.sleep(timedelta(days=1))


async def test_the_deploy_check_replays_recent_and_running_lines_and_catches_a_breaking_change(
        client, on_server, db):
    async with start_worker(client, db, on_server):
        app = create_app(on_server, engine=db, client=client)
        async with api_client(app, db, on_server) as api:
            await make_product(api, "RP-1", on_hand=1)
            shipped = await place(api, "RP-SHIPPED", [("RP-1", 1)])
            waiting = await place(api, "RP-WAITING", [("RP-1", 2)])
            await eventually(lambda: line_of(api, shipped),
                             lambda line: line["status"] == "dispatched", what="a shipped line")
            await eventually(lambda: line_of(api, waiting),
                             lambda line: line["status"] == "backordered", what="a waiting line")

    report = await check_replay(client, since=timedelta(hours=1), limit=100)
    assert report.replayed >= 2 and report.failed == [] and not report.truncated
    capped = await check_replay(client, since=timedelta(hours=1), limit=1)
    assert (capped.replayed, capped.truncated) == (1, True)
    assert await asyncio.to_thread(_check_replay_command, on_server, ["--since-hours", "1"]) == 0

    broken = await check_replay(client, since=timedelta(hours=1), limit=100,
                                workflows=[ChangedLine])
    assert len(broken.failed) >= 2
    assert all(why.startswith("NondeterminismError") for _, why in broken.failed), broken.failed
