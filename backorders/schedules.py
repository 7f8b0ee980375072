"""The Temporal Schedules this service keeps: the daily demand forecast. Every worker
makes sure of it at start-up (creating it, or updating it to the configured cron), so
a change of `FORECAST_SCHEDULE_CRON` takes effect with the next deploy; an empty cron
deletes it."""

from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from backorders.contracts import forecast
from backorders.settings import Settings

log = logging.getLogger(__name__)


def forecast_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            forecast.WORKFLOW_TYPE,
            forecast.ForecastRun(batch_size=settings.forecast_batch_size),
            id=forecast.workflow_id(None),
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[settings.forecast_schedule_cron]),
        # A run still going when the next is due (a very large catalogue) finishes first.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_forecast_schedule(client: Client, settings: Settings) -> None:
    handle = client.get_schedule_handle(forecast.SCHEDULE_ID)
    if not settings.forecast_schedule_cron:
        try:
            await handle.delete()
            log.info("forecast schedule deleted (FORECAST_SCHEDULE_CRON is empty)")
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        return
    wanted = forecast_schedule(settings)
    try:
        await client.create_schedule(forecast.SCHEDULE_ID, wanted)
        log.info("forecast schedule created: %s", settings.forecast_schedule_cron)
    except ScheduleAlreadyRunningError:
        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Ops' pause (and its note) stays: only the spec and the action are ours.
            wanted.state = current.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
