"""Notification activities: the line workflow tells them what happened, they record the
message once and send it; the digest workflow has one to send a customer's day."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from backorders.contracts import DigestInput, LineNotice, NotifyOutcome
from backorders.notify import store
from backorders.notify.service import Notifier

log = logging.getLogger(__name__)


def digest_workflow_id(customer_id: str, send_at_iso: str) -> str:
    return f"digest-{customer_id}-{send_at_iso}"


class NotifyActivities:
    def __init__(self, notifier: Notifier, client: Client, task_queue: str) -> None:
        self._notifier = notifier
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="notify_line")
    async def notify_line(self, notice: LineNotice) -> NotifyOutcome:
        outcome = await self._notifier.notify_line(notice)
        for notification_id in outcome.notification_ids:
            row = await store.get(self._notifier.engine, notification_id)
            if row is not None and row.status == "queued" and row.facts.get("digest"):
                await self._ensure_digest(DigestInput(row.customer_id, row.send_after))
        return outcome

    @activity.defn(name="deliver_notifications")
    async def deliver(self, ids: list[int]) -> NotifyOutcome:
        for notification_id in ids:
            await self._notifier.deliver(notification_id)
        return await self._notifier.outcome(ids)

    @activity.defn(name="send_digest")
    async def send_digest(self, digest: DigestInput) -> int | None:
        return await self._notifier.send_digest(digest.customer_id, digest.send_at)

    async def _ensure_digest(self, digest: DigestInput) -> None:
        """One digest workflow per customer and send time; a second start finds it."""
        from workflows.digest import DigestWorkflow

        try:
            await self._client.start_workflow(
                DigestWorkflow.run, digest,
                id=digest_workflow_id(digest.customer_id, digest.send_at.isoformat()),
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                rpc_timeout=timedelta(seconds=10))
        except WorkflowAlreadyStartedError:
            pass

    def all(self) -> list[object]:
        return [self.notify_line, self.deliver, self.send_digest]
