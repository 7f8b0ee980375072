"""The provider adapters against a real HTTP server on loopback: what each provider
receives, how failures are classified, and how `send_with_retry` waits."""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from backorders.notify.channels import (
    LogChannel,
    Sender,
    SendGridEmail,
    TwilioSms,
    WebhookPush,
    retry_after_seconds,
    send_with_retry,
)
from backorders.notify.message import Channel, Delivery, DeliveryFailed, Outgoing
from tests.fakes.providers import PUSH_PATH, SENDGRID_PATH, ProviderServer, twilio_path

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-token"
SECRET = "whsec_" + base64.b64encode(b"push-secret-for-the-tests").decode()


def email(**overrides: object) -> Outgoing:
    values: dict[str, object] = {
        "idempotency_key": "line-42:backordered:email", "channel": Channel.EMAIL,
        "to": "ada@example.com", "subject": "Your order is on backorder",
        "text": "Hello Ada,\nwidgets are on their way soon.", "html": "<p>Hello Ada</p>"}
    values.update(overrides)
    return Outgoing(**values)  # type: ignore[arg-type]


def sms() -> Outgoing:
    return email(idempotency_key="line-42:backordered:sms", channel=Channel.SMS,
                 to="+15551234567", html=None)


def push() -> Outgoing:
    return email(idempotency_key="line-42:backordered:push", channel=Channel.PUSH,
                 to="device-token-1", html=None)


def sendgrid_at(url: str, timeout: float = 5) -> SendGridEmail:
    return SendGridEmail("SG.test-key", "Backorders <backorders@example.com>", host=url,
                         timeout=timeout)


class Sleeps(list[float]):
    """An injectable sleep that only records how long it was asked to wait."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


# One row per HTTP adapter: how to build it against a base URL, the path it posts to,
# and a message for it.
ADAPTERS: dict[str, tuple[Callable[[str], Sender], str, Callable[[], Outgoing]]] = {
    "sendgrid": (lambda url: sendgrid_at(url), SENDGRID_PATH, email),
    "twilio": (lambda url: TwilioSms(SID, TOKEN, "+15550000000", base_url=url),
               twilio_path(SID), sms),
    "push": (lambda url: WebhookPush(url + PUSH_PATH, SECRET), PUSH_PATH, push),
}


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SendGrid ----------------------------------------------------------------------------


async def test_real_sendgrid_client_posts_the_message_with_its_idempotency_key(
        provider_server: ProviderServer) -> None:
    delivery = await sendgrid_at(provider_server.url).send(email())

    [request] = provider_server.requests
    assert (request.method, request.path, request.answered) == ("POST", SENDGRID_PATH, 202)
    assert request.headers["authorization"] == "Bearer SG.test-key"
    body = request.json
    assert body["from"] == {"email": "backorders@example.com", "name": "Backorders"}
    assert body["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert body["subject"] == "Your order is on backorder"
    assert body["content"] == [
        {"type": "text/plain", "value": "Hello Ada,\nwidgets are on their way soon."},
        {"type": "text/html", "value": "<p>Hello Ada</p>"}]
    assert body["custom_args"] == {"idempotency_key": "line-42:backordered:email"}
    assert body["headers"] == {"X-Idempotency-Key": "line-42:backordered:email"}
    assert delivery.provider_id and len(delivery.provider_id) == 22  # the X-Message-Id


async def test_sendgrid_text_only_message_has_only_plain_content(
        provider_server: ProviderServer) -> None:
    await sendgrid_at(provider_server.url + "/").send(email(html=None))  # trailing slash ok

    [request] = provider_server.requests_to(SENDGRID_PATH)
    assert request.json["content"] == [
        {"type": "text/plain", "value": "Hello Ada,\nwidgets are on their way soon."}]


async def test_sendgrid_429_is_retried_after_the_advised_wait_then_succeeds(
        provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=429, headers={"Retry-After": "1"}, times=2)
    sleeps = Sleeps()

    delivery = await send_with_retry(sendgrid_at(provider_server.url), email(), sleep=sleeps)

    assert sleeps == [1.0, 1.0]
    requests = provider_server.requests_to(SENDGRID_PATH)
    assert [r.answered for r in requests] == [429, 429, 202]
    # Every attempt carries the same key, so the events of a duplicate can be matched.
    assert {r.json["custom_args"]["idempotency_key"] for r in requests} == {
        "line-42:backordered:email"}
    assert delivery.provider_id


async def test_sendgrid_rate_limit_reset_epoch_is_the_wait_when_no_retry_after(
        provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=429,
                              headers={"X-RateLimit-Reset": str(int(time.time()) + 5)})

    with pytest.raises(DeliveryFailed) as failed:
        await sendgrid_at(provider_server.url).send(email())

    assert failed.value.retryable and failed.value.status == 429
    assert failed.value.retry_after is not None and 3 <= failed.value.retry_after <= 5


async def test_500_is_retried_with_growing_jittered_backoff(
        provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=500, times=3)
    sleeps = Sleeps()

    await send_with_retry(sendgrid_at(provider_server.url), email(), base_delay=0.5,
                          sleep=sleeps)

    assert len(sleeps) == 3
    for wait, ceiling in zip(sleeps, [0.5, 1.0, 2.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert len(provider_server.requests_to(SENDGRID_PATH)) == 4


async def test_backoff_never_exceeds_max_delay(provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=503, times=4)
    sleeps = Sleeps()

    await send_with_retry(sendgrid_at(provider_server.url), email(), base_delay=4,
                          max_delay=5, sleep=sleeps)

    assert len(sleeps) == 4 and all(w <= 5 for w in sleeps) and sleeps[-1] >= 2.5


async def test_advised_wait_is_capped_at_max_delay(provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=429, headers={"Retry-After": "120"})
    sleeps = Sleeps()

    await send_with_retry(sendgrid_at(provider_server.url), email(), max_delay=30,
                          sleep=sleeps)

    assert sleeps == [30]


async def test_400_is_not_retried(provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=400,
                              body={"errors": [{"message": "invalid to address"}]})
    sleeps = Sleeps()

    with pytest.raises(DeliveryFailed) as failed:
        await send_with_retry(sendgrid_at(provider_server.url), email(), sleep=sleeps)

    assert not failed.value.retryable and failed.value.status == 400
    assert "invalid to address" in str(failed.value)
    assert sleeps == [] and len(provider_server.requests) == 1


async def test_retries_give_up_after_attempts_and_raise_the_last_failure(
        provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=503, times=10)
    sleeps = Sleeps()

    with pytest.raises(DeliveryFailed) as failed:
        await send_with_retry(sendgrid_at(provider_server.url), email(), attempts=3,
                              sleep=sleeps)

    assert failed.value.retryable and failed.value.status == 503
    assert len(provider_server.requests) == 3 and len(sleeps) == 2


async def test_sendgrid_timeout_is_a_retryable_failure(provider_server: ProviderServer) -> None:
    provider_server.fail_next(SENDGRID_PATH, status=202, delay=1.0)

    with pytest.raises(DeliveryFailed) as failed:
        await sendgrid_at(provider_server.url, timeout=0.2).send(email())

    assert failed.value.retryable and failed.value.status is None


# --- Twilio ------------------------------------------------------------------------------


async def test_twilio_sms_sends_form_fields_basic_auth_and_idempotency_token(
        provider_server: ProviderServer) -> None:
    sender = TwilioSms(SID, TOKEN, "+15550000000", base_url=provider_server.url)

    first = await sender.send(sms())
    again = await sender.send(sms())

    [request, _] = provider_server.requests_to(twilio_path(SID))
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {"To": "+15551234567", "From": "+15550000000",
                            "Body": "Hello Ada,\nwidgets are on their way soon."}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(
        f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["i-twilio-idempotency-token"] == "line-42:backordered:sms"
    assert first.provider_id and first.provider_id.startswith("SM")
    assert again == first  # Twilio answers a repeated token with the same message


async def test_twilio_uses_an_injected_client(provider_server: ProviderServer) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        sender = TwilioSms(SID, TOKEN, "+15550000000", base_url=provider_server.url,
                           client=client)
        delivery = await sender.send(sms())

    assert delivery.provider_id and len(provider_server.requests) == 1


# --- push webhook ------------------------------------------------------------------------


async def test_webhook_push_is_signed_the_standard_webhooks_way(
        provider_server: ProviderServer) -> None:
    before = time.time()
    delivery = await WebhookPush(provider_server.url + PUSH_PATH, SECRET).send(push())

    [request] = provider_server.requests_to(PUSH_PATH)
    # What a receiver runs: the reference library, given the same `whsec_` secret.
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload == {
        "to": "device-token-1", "title": "Your order is on backorder",
        "body": "Hello Ada,\nwidgets are on their way soon.",
        "idempotency_key": "line-42:backordered:push"}
    assert request.headers["webhook-id"] == "line-42:backordered:push"
    assert before - 1 <= int(request.headers["webhook-timestamp"]) <= time.time()
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["idempotency-key"] == "line-42:backordered:push"
    assert "x-signature" not in request.headers  # the old body-only, replayable signature
    assert delivery == Delivery(provider_id=None)


async def test_webhook_push_does_not_verify_with_another_secret(
        provider_server: ProviderServer) -> None:
    await WebhookPush(provider_server.url + PUSH_PATH, SECRET).send(push())

    [request] = provider_server.requests
    other = "whsec_" + base64.b64encode(b"another-receiver-secret").decode()
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(other).verify(request.body, request.headers)


async def test_a_push_older_than_five_minutes_is_refused_and_cannot_be_redated(
        provider_server: ProviderServer) -> None:
    six_minutes_ago = datetime.now(UTC) - timedelta(minutes=6)
    await WebhookPush(provider_server.url + PUSH_PATH, SECRET,
                      now=lambda: six_minutes_ago).send(push())

    [request] = provider_server.requests
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(request.body, request.headers)
    # A replay with a fresh timestamp fails too: the timestamp is part of what is signed.
    redated = {**request.headers, "webhook-timestamp": str(int(time.time()))}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(request.body, redated)


async def test_a_retried_push_keeps_its_webhook_id_and_signs_each_attempt_anew(
        provider_server: ProviderServer) -> None:
    provider_server.fail_next(PUSH_PATH, status=503)
    start = datetime.now(UTC)
    attempts = iter([start - timedelta(seconds=30), start])
    sender = WebhookPush(provider_server.url + PUSH_PATH, SECRET, now=lambda: next(attempts))

    await send_with_retry(sender, push(), sleep=Sleeps())

    [failed, retried] = provider_server.requests_to(PUSH_PATH)
    assert failed.answered == 503 and retried.answered == 200
    assert failed.headers["webhook-id"] == retried.headers["webhook-id"] == "line-42:backordered:push"
    assert int(retried.headers["webhook-timestamp"]) - int(failed.headers["webhook-timestamp"]) == 30
    assert failed.headers["webhook-signature"] != retried.headers["webhook-signature"]
    assert Webhook(SECRET).verify(retried.body, retried.headers)["to"] == "device-token-1"


def test_webhook_push_refuses_a_malformed_secret_when_built() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookPush("http://x/push", "whsec_not base64!")


# --- what every HTTP adapter shares ------------------------------------------------------


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
@pytest.mark.parametrize(("status", "retryable"), [
    (400, False), (401, False), (404, False), (422, False),
    (429, True), (500, True), (502, True), (503, True)])
async def test_status_classification(provider_server: ProviderServer, adapter: str,
                                     status: int, retryable: bool) -> None:
    build, path, message = ADAPTERS[adapter]
    provider_server.fail_next(path, status=status, headers={"Retry-After": "7"})

    with pytest.raises(DeliveryFailed) as failed:
        await build(provider_server.url).send(message())

    assert (failed.value.status, failed.value.retryable) == (status, retryable)
    # Only a temporary failure's advice matters; a refusal is final.
    assert failed.value.retry_after == (7.0 if retryable else None)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
async def test_provider_not_listening_is_a_retryable_failure(adapter: str) -> None:
    build, _, message = ADAPTERS[adapter]

    with pytest.raises(DeliveryFailed) as failed:
        await build(f"http://127.0.0.1:{closed_port()}").send(message())

    assert failed.value.retryable and failed.value.status is None
    assert "unreachable" in str(failed.value)


async def test_httpx_timeout_is_a_retryable_failure(provider_server: ProviderServer) -> None:
    provider_server.fail_next(PUSH_PATH, status=200, delay=1.0)

    with pytest.raises(DeliveryFailed) as failed:
        await WebhookPush(provider_server.url + PUSH_PATH, SECRET, timeout=0.2).send(push())

    assert failed.value.retryable


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
async def test_each_adapter_recovers_through_send_with_retry(
        provider_server: ProviderServer, adapter: str) -> None:
    build, path, message = ADAPTERS[adapter]
    provider_server.fail_next(path, status=503, times=2)
    sleeps = Sleeps()

    await send_with_retry(build(provider_server.url), message(), sleep=sleeps)

    assert [r.answered for r in provider_server.requests_to(path)][:2] == [503, 503]
    assert len(sleeps) == 2


# --- retry semantics without a provider --------------------------------------------------


class Scripted:
    """A sender that raises the given exceptions in turn, then delivers."""

    channel = Channel.LOG

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def send(self, message: Outgoing) -> Delivery:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Delivery(provider_id="ok")


async def test_errors_other_than_delivery_failed_are_not_retried() -> None:
    sender = Scripted(ValueError("bug"))
    sleeps = Sleeps()

    with pytest.raises(ValueError, match="bug"):
        await send_with_retry(sender, email(), sleep=sleeps)

    assert sender.calls == 1 and sleeps == []


async def test_a_zero_retry_after_retries_at_once() -> None:
    sender = Scripted(DeliveryFailed("busy", retryable=True, status=429, retry_after=0))
    sleeps = Sleeps()

    assert await send_with_retry(sender, email(), sleep=sleeps) == Delivery(provider_id="ok")
    assert sleeps == [0]


def test_retry_after_reads_seconds_http_dates_and_rate_limit_resets() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds({"retry-after": "2.5"}, now=now) == 2.5
    assert retry_after_seconds({"Retry-After": formatdate(now + 10, usegmt=True)}, now=now) == 10
    assert retry_after_seconds({"Retry-After": formatdate(now - 10, usegmt=True)}, now=now) == 0
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(now) + 4)}, now=now) == 4
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None


# --- the log channel and the protocol ----------------------------------------------------


async def test_log_channel_logs_the_message_and_sends_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="backorders.notify.channels"):
        delivery = await LogChannel().send(email())

    assert delivery == Delivery(provider_id=None)
    [record] = [r for r in caplog.records if r.name == "backorders.notify.channels"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert "ada@example.com" in message and "Your order is on backorder" in message
    assert "Hello Ada," in message and "widgets" not in message  # the first line only


def test_every_adapter_is_a_sender_for_its_channel() -> None:
    senders = [sendgrid_at("http://127.0.0.1:1"),
               TwilioSms(SID, TOKEN, "+15550000000"), WebhookPush("http://x/push", SECRET),
               LogChannel()]
    assert all(isinstance(s, Sender) for s in senders)
    assert [s.channel for s in senders] == [Channel.EMAIL, Channel.SMS, Channel.PUSH,
                                            Channel.LOG]
