"""Provider adapters: each turns one `Outgoing` into exactly one provider call and
answers with a `Delivery` or raises `DeliveryFailed`.

The adapters never retry themselves; `send_with_retry` does, for the failures a provider
calls temporary (429, 5xx, an unreachable or slow server), waiting as long as the
provider asks. Every request carries the message's idempotency key in the provider's
own way, so a retry after a lost answer does not send the message twice."""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import httpx
import python_http_client.exceptions
import sendgrid
from sendgrid.helpers.mail import CustomArg, Header, Mail
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from backorders.notify.message import Channel, Delivery, DeliveryFailed, Outgoing
from backorders.webhooks import sign_standard, standard_key

log = logging.getLogger(__name__)

IDEMPOTENCY_ARG = "idempotency_key"
"""The SendGrid custom arg that carries the key; it comes back on every SendGrid event."""
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
"""The email header that carries the key, so a copy in a mailbox can be traced."""
TWILIO_IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


@runtime_checkable
class Sender(Protocol):
    """One provider for one channel."""

    channel: Channel

    async def send(self, message: Outgoing) -> Delivery: ...


# --- failures --------------------------------------------------------------------------


def _header(headers: Any, name: str) -> str | None:
    """A header from whatever the client gave: `http.client.HTTPMessage`, `httpx.Headers`
    (both case-insensitive) or a plain mapping (after pickling, say)."""
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    return None if value is None else str(value)


def retry_after_seconds(headers: Any, *, now: float | None = None) -> float | None:
    """How long the provider asked us to wait: `Retry-After` (seconds or an HTTP date),
    else `X-RateLimit-Reset` (epoch seconds, SendGrid's rate-limit header)."""
    now = time.time() if now is None else now
    value = _header(headers, "Retry-After")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            pass
    reset = _header(headers, "X-RateLimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset.strip()) - now)
        except ValueError:
            pass
    return None


def _retryable_status(status: int) -> bool:
    # 408: the provider gave up waiting for our request, so trying again is safe.
    return status in (408, 429) or status >= 500


def _failure(provider: str, status: int, headers: Any, body: bytes | str | None) -> DeliveryFailed:
    retryable = _retryable_status(status)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    detail = " ".join((body or "").split())[:200]
    return DeliveryFailed(
        f"{provider} answered {status}" + (f": {detail}" if detail else ""),
        retryable=retryable, status=status,
        retry_after=retry_after_seconds(headers) if retryable else None)


def _unreachable(provider: str, exc: BaseException) -> DeliveryFailed:
    return DeliveryFailed(f"{provider} unreachable: {type(exc).__name__}: {exc}", retryable=True)


# --- providers -------------------------------------------------------------------------


class SendGridEmail:
    """Email through SendGrid's v3 mail/send, with the official (blocking) client run in
    a worker thread so the event loop never waits on the network."""

    channel: Channel = Channel.EMAIL

    def __init__(self, api_key: str, sender: str, host: str = "https://api.sendgrid.com",
                 timeout: float = 10) -> None:
        self._sender = sender
        # The client builds `{host}/v3/...` once, here: no trailing slash, no `/v3`.
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        # `send()` takes no timeout and urllib's default is to wait forever; the
        # python_http_client child clients copy this one's timeout.
        self._client.client.timeout = timeout

    def _mail(self, message: Outgoing) -> Mail:
        mail = Mail(from_email=self._sender, to_emails=message.to, subject=message.subject,
                    plain_text_content=message.text, html_content=message.html)
        mail.custom_arg = CustomArg(IDEMPOTENCY_ARG, message.idempotency_key)
        mail.header = Header(IDEMPOTENCY_HEADER, message.idempotency_key)
        return mail

    def _send(self, body: dict[str, Any]) -> Delivery:
        try:
            response = self._client.send(body)
        except python_http_client.exceptions.HTTPError as exc:
            # Raised for every non-2xx answer; `headers` is urllib's HTTPMessage.
            raise _failure("SendGrid", exc.status_code, exc.headers, exc.body) from None
        except (OSError, http.client.HTTPException) as exc:
            # URLError (refused, DNS), TimeoutError, RemoteDisconnected, BadStatusLine...
            raise _unreachable("SendGrid", exc) from exc
        return Delivery(provider_id=_header(response.headers, "X-Message-Id"))

    async def send(self, message: Outgoing) -> Delivery:
        # Built here, not in the thread: a bad address fails at once and is not retried.
        body = self._mail(message).get()
        return await asyncio.to_thread(self._send, body)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle is most of what a new httpx client costs (~50 ms); do it once.
    return httpx.create_ssl_context()


class _HttpSender:
    """What the httpx-based providers share: one POST, the same failure mapping.

    A client passed in is used as is (its owner closes it, and it sets the timeouts);
    without one each send opens a short-lived client, so nothing is tied to one event
    loop or left open."""

    provider = "provider"

    def __init__(self, client: httpx.AsyncClient | None, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            if self._client is not None:
                response = await self._client.post(url, **kwargs)
            else:
                async with httpx.AsyncClient(timeout=self._timeout, verify=_ssl_context()) as client:
                    response = await client.post(url, **kwargs)
        except httpx.TransportError as exc:  # connect, timeouts, protocol, network
            raise _unreachable(self.provider, exc) from exc
        if not response.is_success:
            raise _failure(self.provider, response.status_code, response.headers, response.text)
        return response


class TwilioSms(_HttpSender):
    """SMS through Twilio's Messages API. The text only: SMS has no subject."""

    channel: Channel = Channel.SMS
    provider = "Twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 base_url: str = "https://api.twilio.com",
                 client: httpx.AsyncClient | None = None, *, timeout: float = 10) -> None:
        super().__init__(client, timeout)
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._from = from_number
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, message: Outgoing) -> Delivery:
        response = await self._post(
            self._url, auth=self._auth,
            data={"To": message.to, "From": self._from, "Body": message.text},
            headers={TWILIO_IDEMPOTENCY_HEADER: message.idempotency_key})
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        return Delivery(provider_id=sid)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookPush(_HttpSender):
    """Push through our own app's webhook, signed the Standard Webhooks way so the app
    can tell it came from us and when: `webhook-id` is the message's idempotency key,
    the same on every retry, so the app can drop a repeat; `webhook-timestamp` is the
    attempt's, so a captured request is refused once the receiver's window passes.

    `secret`: a `whsec_<base64>` string or the raw key (see `backorders.webhooks.push_secret`)."""

    channel: Channel = Channel.PUSH
    provider = "push webhook"

    def __init__(self, url: str, secret: str | bytes, client: httpx.AsyncClient | None = None, *,
                 timeout: float = 10, now: Callable[[], datetime] = _utc_now) -> None:
        super().__init__(client, timeout)
        self._url = url
        self._secret = standard_key(secret)  # a malformed secret fails here, not per send
        self._now = now

    async def send(self, message: Outgoing) -> Delivery:
        # Serialised once: the signature covers exactly the bytes sent.
        body = json.dumps({"to": message.to, "title": message.subject, "body": message.text,
                           "idempotency_key": message.idempotency_key},
                          separators=(",", ":"), ensure_ascii=False).encode()
        await self._post(self._url, content=body, headers={
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            **sign_standard(self._secret, message.idempotency_key, body, self._now())})
        return Delivery(provider_id=None)


class LogChannel:
    """The offline default: nothing leaves the process, the message goes to the log (the
    store keeps the full text), so every flow works without provider credentials."""

    channel: Channel = Channel.LOG

    async def send(self, message: Outgoing) -> Delivery:
        first_line = next((line for line in message.text.splitlines() if line.strip()), "")
        log.info("notification (%s) to %s: %s | %s", message.channel.value, message.to,
                 message.subject, first_line)
        return Delivery(provider_id=None)


# --- retries ---------------------------------------------------------------------------


class _ProviderWait(wait_base):
    """Wait as long as the provider asked (capped), else exponential backoff with jitter:
    between half and all of `base * 2**(n-1)`, capped at `max_delay`, so senders that
    failed together do not retry together."""

    def __init__(self, base_delay: float, max_delay: float) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, DeliveryFailed) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_state.attempt_number - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryFailed) and exc.retryable


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning("send attempt %d failed (%s); retrying in %.2fs",
                retry_state.attempt_number, exc, wait)


async def send_with_retry(sender: Sender, message: Outgoing, *, attempts: int = 5,
                          base_delay: float = 0.5, max_delay: float = 30.0,
                          sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Delivery:
    """Send, retrying only failures the provider called temporary, at most `attempts`
    times in all; then the last `DeliveryFailed` is raised. Anything else (a refusal, a
    bug) is raised at once. `sleep` is injectable so tests need not wait."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=_ProviderWait(base_delay, max_delay),
        retry=retry_if_exception(_retryable),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    return await retrying(sender.send, message)
