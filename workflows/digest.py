"""A customer's daily digest: wait, durably, until the digest hour where they live, then
send every update of the day in one message."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from backorders.contracts.digest import WORKFLOW_TYPE, DigestInput


@workflow.defn(name=WORKFLOW_TYPE)
class DigestWorkflow:
    @workflow.run
    async def run(self, digest: DigestInput) -> int | None:
        wait = digest.send_at - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        return await workflow.execute_activity_method(
            NotifyActivities.send_digest,
            digest,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
