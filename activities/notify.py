"""Notification activities: the line workflow tells them what happened, they record the
message once and send it; the digest workflow has one to send a customer's day."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.heartbeat import heartbeating
from backorders.contracts import digest
from backorders.contracts.activities import LineNotice, NotifyOutcome
from backorders.contracts.digest import DigestInput
from backorders.notify import store
from backorders.notify.service import Notifier

log = logging.getLogger(__name__)


def _settled(outcome: NotifyOutcome, what: str) -> NotifyOutcome:
    """A message still pending is leased by another sender (one still sending, or one
    that failed part-way outside this activity's earlier attempts): fail this attempt so
    it is retried once the lease has run out, rather than report it done and lose it."""
    if "pending" in outcome.status.split(","):
        raise ApplicationError(f"notification {what} is held by another sender; "
                               "retrying after its lease", type="NotificationLeased")
    return outcome


def _holder() -> store.Holder:
    info = activity.info()
    return store.Holder(f"{info.workflow_run_id}/{info.activity_id}", info.attempt)


class NotifyActivities:
    def __init__(self, notifier: Notifier, client: Client, task_queue: str) -> None:
        self._notifier = notifier
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="notify_line")
    async def notify_line(self, notice: LineNotice) -> NotifyOutcome:
        async with heartbeating():
            outcome = _settled(await self._notifier.notify_line(notice, _holder()), notice.key)
            if "queued" in outcome.status.split(","):
                for notification_id in outcome.notification_ids:
                    row = await store.get(self._notifier.engine, notification_id)
                    if row is not None and row.status == "queued" and row.facts.get("digest"):
                        await self._ensure_digest(DigestInput(row.customer_id, row.send_after))
            return outcome

    @activity.defn(name="deliver_notifications")
    async def deliver(self, ids: list[int]) -> NotifyOutcome:
        async with heartbeating():
            for notification_id in ids:
                await self._notifier.deliver(notification_id, holder=_holder())
            return _settled(await self._notifier.outcome(ids), ",".join(map(str, ids)))

    @activity.defn(name="send_digest")
    async def send_digest(self, request: DigestInput) -> int | None:
        digest_id = await self._notifier.send_digest(request.customer_id, request.send_at,
                                                     _holder())
        if digest_id is not None:
            _settled(await self._notifier.outcome([digest_id]), f"digest {digest_id}")
        return digest_id

    async def _ensure_digest(self, request: DigestInput) -> None:
        """One digest workflow per customer and send time; a second start finds it."""
        try:
            await self._client.start_workflow(
                digest.WORKFLOW_TYPE, request,
                id=digest.workflow_id(request.customer_id, request.send_at),
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                rpc_timeout=timedelta(seconds=10))
        except WorkflowAlreadyStartedError:
            pass

    def all(self) -> list[object]:
        return [self.notify_line, self.deliver, self.send_digest]
