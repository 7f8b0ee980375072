"""Customer and staff notifications end to end (F11-F16): the line workflow tells its
customer about each transition through the real SendGrid client (against a recording
server on loopback), at most once, on the channel they prefer, never in their quiet
hours, grouped in a daily digest when they ask; durable timers post updates, escalate
and flag missed promises; staff hear about low stock, shortfalls and receipts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from backorders.contracts.activities import LineNotice
from backorders.notify.channels import LogChannel
from backorders.notify.message import Channel
from backorders.notify.service import DUE_STAFF, Notifier
from tests.fakes.providers import ProviderServer
from tests.support import eventually, make_product, order_body, place, receive, rows, scalar, wait_settled
from workflows.line import LineWorkflow

SENDGRID = "/v3/mail/send"


@pytest.fixture
def provider_settings(settings, provider_server: ProviderServer):
    """Real SendGrid and Twilio clients, pointed at the recording server."""
    return settings.model_copy(update={
        "sendgrid_api_key": SecretStr("SG.test-key"),
        "sendgrid_host": provider_server.url,
        "twilio_account_sid": "AC123",
        "twilio_auth_token": SecretStr("secret"),
        "twilio_from": "+15550000000",
        "twilio_base_url": provider_server.url,
        "notify_max_retry_seconds": 0.2,
        "staff_sales": ["sales@shop.example"],
        "staff_purchasing": ["buyers@shop.example"],
        "staff_account_team": ["accounts@shop.example"],
    })


@pytest.fixture
async def notifying(temporal_env, db, provider_settings):
    """A worker and the API with providers configured."""
    from api.app import create_app
    from tests.support import api_client, start_worker

    async with start_worker(temporal_env.client, db, provider_settings) as running:
        app = create_app(provider_settings, engine=db, client=temporal_env.client)
        async with api_client(app, db, provider_settings, base_url="http://b") as api:
            yield api, running


async def notifications(api, **query: Any) -> list[dict[str, Any]]:
    r = await api.get("/notifications", params=query)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def sent(api, event: str, **query: Any) -> list[dict[str, Any]]:
    return [n for n in await notifications(api, **query)
            if n["event"] == event and n["status"] == "sent"]


def mails_to(server: ProviderServer, address: str) -> list[dict[str, Any]]:
    return [r.json for r in server.requests_to(SENDGRID)
            if r.json["personalizations"][0]["to"][0]["email"] == address]


async def test_each_transition_reaches_the_customer_once_by_email(notifying, provider_server):
    api, _ = notifying
    await make_product(api, "NT-1", on_hand=1, name="Brake pad")
    order = await place(api, "N-1", [("NT-1", 3)], customer="alice")

    await eventually(lambda: sent(api, "backordered", order_id=order["id"]), what="backordered")
    await receive(api, "NT-GRN-1", "NT-1", 2)
    await eventually(lambda: sent(api, "dispatched", order_id=order["id"]),
                     lambda got: len(got) == 2, what="both dispatches announced")
    allocated = await sent(api, "allocated", order_id=order["id"])

    assert len(allocated) == 1 and allocated[0]["channel"] == "email"
    assert allocated[0]["recipient"] == "alice@example.com"
    mails = mails_to(provider_server, "alice@example.com")
    subjects = [m["subject"] for m in mails]
    assert len(mails) == 4, subjects  # backordered, allocated, two dispatches; nothing twice
    keys = [m["custom_args"]["idempotency_key"] for m in mails]
    assert len(set(keys)) == 4
    backordered = next(m for m in mails
                       if m["custom_args"]["idempotency_key"].endswith(":backordered:email"))
    body = " ".join(c["value"] for c in backordered["content"])
    assert "Brake pad" in body and "/opt-out?" in body


async def test_a_retried_activity_never_sends_twice(notifying, provider_server, db,
                                                    provider_settings):
    api, _ = notifying
    await make_product(api, "NT-2")
    order = await place(api, "N-2", [("NT-2", 1)], customer="bob")
    await eventually(lambda: sent(api, "backordered", order_id=order["id"]), what="sent")
    line_id = order["lines"][0]["id"]
    notifier = Notifier(db, provider_settings)
    before = len(mails_to(provider_server, "bob@example.com"))
    assert before == 1

    # The activity running again (after a timeout or a crash): same key, same row.
    again = await notifier.notify_line(LineNotice(line_id, "backordered", f"{line_id}:backordered",
                                                  datetime.now(UTC)))
    for notification_id in again.notification_ids:
        assert await notifier.deliver(notification_id) == "sent"

    assert len(mails_to(provider_server, "bob@example.com")) == before
    assert await scalar(db, "SELECT count(*) FROM notifications WHERE event = 'backordered'") == 1


class CrashingEmail:
    """An email sender cut off mid-send: the attempt dies with its message leased."""

    channel = Channel.EMAIL

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def send(self, message):
        raise self._error


def crashing_notifier(db, provider_settings, error: Exception) -> Notifier:
    return Notifier(db, provider_settings,
                    senders={Channel.EMAIL: CrashingEmail(error), Channel.LOG: LogChannel()})


async def waiting_line_notice(api, sku: str, order_number: str, customer: str,
                              ) -> tuple[dict[str, Any], LineNotice]:
    """A backordered line whose first message went out, and a status update for it."""
    await make_product(api, sku)
    order = await place(api, order_number, [(sku, 1)], customer=customer)
    await eventually(lambda: sent(api, "backordered", order_id=order["id"]), what="sent")
    line_id = order["lines"][0]["id"]
    return order, LineNotice(line_id, "status_update", f"{line_id}:status_update:1",
                             datetime.now(UTC), days_waiting=7)


def status_updates_mailed(provider_server, address: str) -> int:
    return len([m for m in mails_to(provider_server, address)
                if m["custom_args"]["idempotency_key"].endswith(":status_update:1:email")])


async def test_a_message_an_unfinished_attempt_left_leased_is_sent_when_the_lease_ends(
        notifying, provider_server, db, provider_settings):
    """A send that died part-way keeps its lease for a while; the retried activity must
    wait it out and send, not report the message as pending and drop it."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.notify import NotifyActivities

    api, running = notifying
    order, notice = await waiting_line_notice(api, "NT-L", "N-L", "lena")
    crashing = crashing_notifier(db, provider_settings, RuntimeError("worker lost mid-send"))
    with pytest.raises(RuntimeError):
        await crashing.notify_line(notice)

    activities = NotifyActivities(Notifier(db, provider_settings), running.client,
                                  provider_settings.task_queue)
    with pytest.raises(ApplicationError) as held:
        await ActivityEnvironment().run(activities.notify_line, notice)
    assert held.value.type == "NotificationLeased" and not held.value.non_retryable
    assert not await sent(api, "status_update", order_id=order["id"])

    async with db.begin() as conn:
        await conn.execute(sa.text(
            "UPDATE notifications SET facts = jsonb_set(facts, '{lease_until}', "
            "to_jsonb(now() - interval '1 second')) WHERE event = 'status_update'"))
    outcome = await ActivityEnvironment().run(activities.notify_line, notice)
    assert outcome.status == "sent"
    assert len(await sent(api, "status_update", order_id=order["id"])) == 1
    assert status_updates_mailed(provider_server, "lena@example.com") == 1


async def test_the_next_attempt_of_the_same_activity_takes_over_its_lease_at_once(
        notifying, provider_server, db, provider_settings):
    """Attempt 1 recorded the message with its lease and was cut off before finishing (a
    database outage): Temporal starts attempt 2 only once attempt 1 is over, so attempt 2
    sends at once; another activity still keeps off until the lease runs out."""
    import dataclasses

    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.notify import NotifyActivities

    def attempt(n: int, activity_id: str = "7") -> ActivityEnvironment:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_run_id="run-1",
                                       activity_id=activity_id, attempt=n)
        return env

    api, running = notifying
    order, notice = await waiting_line_notice(api, "NT-T", "N-T", "tove")
    crashing = NotifyActivities(
        crashing_notifier(db, provider_settings, ConnectionError("database went away")),
        running.client, provider_settings.task_queue)
    with pytest.raises(ConnectionError):
        await attempt(1).run(crashing.notify_line, notice)

    activities = NotifyActivities(Notifier(db, provider_settings), running.client,
                                  provider_settings.task_queue)
    with pytest.raises(ApplicationError) as held:
        await attempt(1, activity_id="8").run(activities.notify_line, notice)
    assert held.value.type == "NotificationLeased"
    outcome = await attempt(2).run(activities.notify_line, notice)
    assert outcome.status == "sent"
    assert len(await sent(api, "status_update", order_id=order["id"])) == 1
    assert status_updates_mailed(provider_server, "tove@example.com") == 1
    assert await scalar(db, "SELECT facts ? 'lease_holder' FROM notifications "
                            "WHERE event = 'status_update' AND line_id = :l",
                        l=notice.line_id) is False


async def test_provider_429_and_500_are_retried_and_the_message_goes_once(
        notifying, provider_server):
    api, _ = notifying
    provider_server.fail_next(SENDGRID, status=429, headers={"Retry-After": "0"}, times=1)
    provider_server.fail_next(SENDGRID, status=500, times=1)
    await make_product(api, "NT-3")
    order = await place(api, "N-3", [("NT-3", 1)], customer="carol")

    [note] = await eventually(lambda: sent(api, "backordered", order_id=order["id"]),
                              what="sent after retries")
    assert [r.answered for r in provider_server.requests_to(SENDGRID)][:3] == [429, 500, 202]
    assert note["attempts"] == 1 and note["provider_id"]


async def test_a_failing_channel_falls_back_to_the_next(notifying, provider_server):
    api, _ = notifying
    r = await api.put("/customers/dan/preferences", json={"channels": ["sms", "email"]})
    assert r.status_code == 200, r.text
    provider_server.fail_next("/2010-04-01/Accounts/AC123/Messages.json", status=400, times=5)
    await make_product(api, "NT-4")
    body = order_body("N-4", [("NT-4", 1)], customer="dan")
    body["customer"]["phone"] = "+15551234567"
    order = (await api.post("/orders", json=body)).json()

    [note] = await eventually(lambda: sent(api, "backordered", order_id=order["id"]), what="sent")
    assert note["channel"] == "email"
    assert note["attempt_log"][0]["channel"] == "sms" and note["attempt_log"][0]["status"] == 400


async def test_a_message_that_every_channel_refuses_is_recorded_as_failed(
        notifying, provider_server):
    api, _ = notifying
    provider_server.fail_next(SENDGRID, status=500, times=100)
    await make_product(api, "NT-5")
    order = await place(api, "N-5", [("NT-5", 1)], customer="erin")

    [note] = await eventually(lambda: notifications(api, order_id=order["id"], status="failed"),
                              what="the failure to be recorded")
    assert note["failed_at"] and "500" in note["reason"]


async def test_opting_out_is_honoured_at_once_by_link_and_by_sms_keyword(
        notifying, provider_server, provider_settings, db):
    api, _ = notifying
    await make_product(api, "NT-6")
    body = order_body("N-6", [("NT-6", 2)], customer="fay")
    body["customer"]["phone"] = "+15557654321"
    order = (await api.post("/orders", json=body)).json()
    [note] = await eventually(lambda: sent(api, "backordered", order_id=order["id"]), what="sent")
    link = next(word for word in note["body_text"].split() if "/opt-out?" in word)
    r = await api.get(link.removeprefix(provider_settings.public_base_url))
    assert r.status_code == 200, r.text
    assert (await api.get(link.replace("token=", "token=0"))).status_code == 403

    form = {"From": "+15557654321", "Body": "stop"}
    signature = RequestValidator(provider_settings.twilio_auth_token.get_secret_value()) \
        .compute_signature(provider_settings.public_base_url.rstrip("/") + "/sms/inbound", form)
    r = await api.post("/sms/inbound", data=form, headers={"X-Twilio-Signature": signature})
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == ["fay"]
    prefs = (await api.get("/customers/fay/preferences")).json()
    assert sorted(prefs["opted_out"]) == ["email", "sms"]

    await receive(api, "NT-GRN-6", "NT-6", 1)
    [suppressed] = await eventually(
        lambda: notifications(api, order_id=order["id"], event="allocated"), what="allocated")
    assert suppressed["status"] == "suppressed" and "opted out" in suppressed["reason"]


async def test_quiet_hours_hold_a_message_on_a_durable_timer(notifying, temporal_env, db):
    api, running = notifying
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).time().replace(microsecond=0, tzinfo=None)
    end = (now + timedelta(hours=3)).time().replace(second=0, microsecond=0, tzinfo=None)
    r = await api.put("/customers/gus/preferences",
                      json={"quiet_hours": {"start": start.isoformat(), "end": end.isoformat()}})
    assert r.status_code == 200, r.text
    await make_product(api, "NT-7")
    order = await place(api, "N-7", [("NT-7", 1)], customer="gus")

    [queued] = await eventually(lambda: notifications(api, order_id=order["id"], status="queued"),
                                what="the message to wait")
    assert "quiet hours" in queued["reason"]
    await temporal_env.sleep(timedelta(hours=4))
    await eventually(lambda: sent(api, "backordered", order_id=order["id"]),
                     what="sent when quiet hours end")
    # Sent when the workflow's durable timer fired, in the workflow's (skipped) time.
    handle = running.client.get_workflow_handle_for(LineWorkflow.run,
                                                    order["lines"][0]["workflow_id"])
    timeline = (await handle.query(LineWorkflow.state)).timeline
    held = next(e for e in timeline if "held until" in e.message)
    done = next(e for e in timeline if e.message == "backordered message: sent")
    assert done.at >= datetime.fromisoformat(queued["send_after"]) > held.at


async def test_a_daily_digest_groups_the_days_updates_into_one_message(
        notifying, temporal_env, provider_server):
    api, _ = notifying
    r = await api.put("/customers/hal/preferences", json={"digest": "daily"})
    assert r.status_code == 200, r.text
    await make_product(api, "NT-8")
    await make_product(api, "NT-9")
    order = await place(api, "N-8", [("NT-8", 1), ("NT-9", 2)], customer="hal")
    await eventually(lambda: notifications(api, customer_id="hal", status="queued"),
                     lambda got: len(got) == 2, what="both updates queued for the digest")

    await temporal_env.sleep(timedelta(days=1))
    [digest] = await eventually(lambda: sent(api, "digest", customer_id="hal"), what="digest")
    items = await notifications(api, order_id=order["id"])
    assert {n["status"] for n in items} == {"digested"}
    assert {n["digest_id"] for n in items} == {digest["id"]}
    assert "NT-8" in digest["body_text"] and "NT-9" in digest["body_text"]
    assert len(mails_to(provider_server, "hal@example.com")) == 1


async def test_waiting_lines_get_weekly_updates_escalations_and_missed_promises(
        notifying, temporal_env, provider_settings):
    api, running = notifying
    await make_product(api, "NT-10")
    body = order_body("N-10", [("NT-10", 1)], customer="ida", tier="platinum")
    body["lines"][0]["promised_date"] = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    order = (await api.post("/orders", json=body)).json()
    # A platinum customer waiting is escalated at once.
    await eventually(lambda: sent(api, "escalation"), what="tier escalation")

    await temporal_env.sleep(timedelta(days=15))
    updates = await eventually(lambda: sent(api, "status_update", order_id=order["id"]),
                               lambda got: len(got) >= 2, what="two weekly updates")
    assert len(updates) == 2
    assert await eventually(lambda: sent(api, "promise_missed", order_id=order["id"]))
    staff = await sent(api, "staff_promise_missed", order_id=order["id"])
    assert [n["recipient"] for n in staff] == ["sales@shop.example"]
    escalations = await sent(api, "escalation", order_id=order["id"])
    assert [n["recipient"] for n in escalations] == ["accounts@shop.example"]  # once only
    handle = running.client.get_workflow_handle_for(LineWorkflow.run,
                                                    order["lines"][0]["workflow_id"])
    state = await handle.query(LineWorkflow.state)
    assert any(e.kind == "promise_missed" for e in state.timeline)


async def test_staff_hear_of_low_stock_shortfalls_and_processed_receipts(notifying, db):
    api, _ = notifying
    await make_product(api, "NT-11", on_hand=10, low_stock_threshold=5)
    await place(api, "N-11", [("NT-11", 6)], customer="jo")  # available 4 < 5
    await place(api, "N-12", [("NT-11", 7)], customer="kim")  # 3 shipped, 4 backordered
    await place(api, "N-13", [("NT-11", 1)], customer="lee")  # shortfall again: cooled down
    await receive(api, "NT-GRN-11", "NT-11", 5)

    got = await eventually(lambda: rows(db, "SELECT event, recipient, status FROM notifications "
                                            "WHERE audience = 'staff' AND sku = 'NT-11'"),
                           lambda rs: len(rs) == 5 and all(r.status == "sent" for r in rs),
                           what="staff alerts sent")
    assert sorted((r.event, r.recipient) for r in got) == [
        ("low_stock", "buyers@shop.example"),
        ("receipt_processed", "buyers@shop.example"),
        ("receipt_processed", "sales@shop.example"),
        ("supply_shortfall", "buyers@shop.example"),
        ("supply_shortfall", "sales@shop.example"),
    ]


async def test_the_staff_alert_relay_reads_only_pending_alerts_not_every_message(db):
    """Every worker polls for staff alerts once a second: that must cost the few alerts
    waiting, not a walk over every notification ever recorded."""
    async with db.begin() as conn:
        await conn.execute(sa.text(
            """
            INSERT INTO notifications (idempotency_key, event, audience, customer_id, status,
                                       channels, facts, event_at)
            SELECT 'sent-' || g, 'dispatched', 'customer', 'c' || g, 'sent', '{email}',
                   '{}'::jsonb, now()
            FROM generate_series(1, 20000) g
            """))
        await conn.execute(sa.text(
            "INSERT INTO notifications (idempotency_key, event, audience, status, channels, "
            "facts, event_at) VALUES ('alert-1', 'low_stock', 'staff', 'pending', '{email}', "
            "'{}'::jsonb, now())"))
        await conn.execute(sa.text("ANALYZE notifications"))
        plan = "\n".join((await conn.execute(
            sa.text("EXPLAIN " + DUE_STAFF.text), {"n": 50})).scalars())
        due = (await conn.execute(DUE_STAFF, {"n": 50})).scalars().all()
    assert "ix_notifications_staff_pending" in plan, plan
    assert len(due) == 1


async def test_a_receipt_sends_the_waiting_customer_one_allocated_message_about_it(
        notifying, db, provider_server):
    """Units received for a waiting line: its customer is told once, by one mail to their
    own address, what was reserved for which order; the customer behind hears nothing.
    (How long that takes is measured by `make bench`.)"""
    api, _ = notifying
    await make_product(api, "NT-12", name="Oil filter")
    first = await place(api, "N-12A", [("NT-12", 3)], customer="mia")
    behind = await place(api, "N-12B", [("NT-12", 1)], customer="noah")
    for order in (first, behind):
        await eventually(lambda order=order: sent(api, "backordered", order_id=order["id"]),
                         what="backordered")
    line_id = first["lines"][0]["id"]

    await receive(api, "NT-GRN-12", "NT-12", 2)  # two of mia's three; none for noah
    # The reserved units shipped: the allocated message's activity has long finished.
    await eventually(lambda: sent(api, "dispatched", order_id=first["id"]), what="dispatched")
    await wait_settled(db)

    [note] = await rows(db, "SELECT line_id, customer_id, status, channel, recipient, subject, "
                            "body_text FROM notifications WHERE event = 'allocated'")
    assert (str(note.line_id), note.customer_id, note.status, note.channel, note.recipient) == (
        line_id, "mia", "sent", "email", "mia@example.com")
    [mail] = [r.json for r in provider_server.requests_to(SENDGRID)
              if ":allocated:" in r.json["custom_args"]["idempotency_key"]]
    assert mail["custom_args"]["idempotency_key"].startswith(f"{line_id}:allocated:")
    assert [to["email"] for to in mail["personalizations"][0]["to"]] == ["mia@example.com"]
    assert mail["subject"] == note.subject == "Back in stock: Oil filter (order N-12A)"
    text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
    assert text == note.body_text
    assert "Oil filter (SKU NT-12) is back in stock" in text
    assert "reserved 2 units for your order N-12A" in text
    assert "1 more unit is still waiting" in text


@pytest.mark.parametrize("policy", ["fifo", "priority"])
async def test_the_backordered_message_gives_each_customer_their_place_in_the_queue(
        notifying, db, policy):
    api, _ = notifying
    sku = f"NT-Q-{policy}"
    await make_product(api, sku, allocation_policy=policy)
    first = await place(api, f"Q-{policy}-1", [(sku, 2)], customer="q-first")
    # Each message tells the queue as it stood when it was written: q-first's is out
    # before anyone else waits, so it says first place under either policy.
    await eventually(lambda: sent(api, "backordered", order_id=first["id"]), what="q-first told")
    await place(api, f"Q-{policy}-2", [(sku, 3)], customer="q-second", tier="platinum")
    await place(api, f"Q-{policy}-3", [(sku, 1)], customer="q-third")
    facts = await eventually(lambda: rows(
        db, "SELECT customer_id, facts->'line' AS line FROM notifications "
            "WHERE event = 'backordered' AND sku = :sku", sku=sku),
        lambda rs: len(rs) == 3, what="three backordered messages")
    places = {f.customer_id: (f.line["queue_position"], f.line["units_ahead"]) for f in facts}
    if policy == "fifo":
        assert places == {"q-first": (1, 0), "q-second": (2, 2), "q-third": (3, 5)}
    else:  # the platinum customer goes ahead of q-first, who was told before it came
        assert places == {"q-first": (1, 0), "q-second": (1, 0), "q-third": (3, 5)}
