"""Webhook signatures, both ways, in one place: proving that an inbound webhook came from
its sender, and signing the push webhook we send.

Every inbound check has the same shape: a secret per sender, a constant-time compare,
and, where the sender timestamps its request, a replay window. A request that fails one
raises `WebhookRejected` before its content is acted on: 401 when it carries no
signature at all, 403 when the signature proves nothing (or no secret is configured, so
nothing could be proved)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from standardwebhooks import Webhook, WebhookVerificationError
from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    from backorders.settings import Settings

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_SECRET_PREFIX = "whsec_"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class WebhookRejected(Exception):
    """An inbound webhook whose sender is not proven: 401 (no signature) or 403."""

    def __init__(self, status_code: Literal[401, 403], message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


# --- inbound ---------------------------------------------------------------------------


def verify_twilio(auth_token: str | None, url: str, params: Mapping[str, str],
                  signature: str | None) -> None:
    """Twilio signs the URL it called (as configured in its console, so the public one,
    query included) followed by every POST parameter, with the account's Auth Token.
    Checked with Twilio's own validator, so its quirks (with and without the default
    port) are the provider's, not ours. No token: refused, never accepted unchecked;
    an empty token would let anyone compute the signature."""
    if not auth_token:
        raise WebhookRejected(403, "TWILIO_AUTH_TOKEN is not configured: inbound SMS are refused")
    if not signature:
        raise WebhookRejected(401, f"the request carries no {TWILIO_SIGNATURE_HEADER} header")
    if not RequestValidator(auth_token).validate(url, dict(params), signature):
        raise WebhookRejected(
            403, f"{TWILIO_SIGNATURE_HEADER} does not match this request "
                 "(PUBLIC_BASE_URL must be the URL Twilio is configured with)")


def verify_standard(secret: str | bytes, headers: Mapping[str, str], body: bytes) -> None:
    """A Standard Webhooks request (`webhook-id`, `webhook-timestamp`, `webhook-signature`):
    HMAC-SHA256 of `id.timestamp.body`, timestamp within five minutes of now (the
    library's fixed tolerance, which is the replay window; dedupe on `webhook-id`
    within it). `secret` as `standard_key` takes it."""
    lower = {k.lower(): v for k, v in headers.items()}
    names = (STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER)
    missing = [name for name in names if not lower.get(name)]
    if missing:
        raise WebhookRejected(401, f"the request carries no {', '.join(missing)} header")
    try:
        Webhook(standard_key(secret)).verify(body, lower, json_parse=False)
    except WebhookVerificationError as exc:
        raise WebhookRejected(403, f"webhook signature refused: {exc}") from None
    except ValueError:  # a malformed signature list, bad base64, a body that is not UTF-8
        raise WebhookRejected(403, "webhook signature refused: malformed") from None


def verify_hmac_sha256(secret: str | bytes, body: bytes, signature: str | None, *,
                       header: str) -> None:
    """Senders that sign the body alone, base64 HMAC-SHA256 (Shopify's
    `X-Shopify-Hmac-Sha256`, WooCommerce's `X-WC-Webhook-Signature`). Nothing in the
    signature dates the request, so a receiver must dedupe on the sender's delivery id."""
    if not signature:
        raise WebhookRejected(401, f"the request carries no {header} header")
    key = secret.encode() if isinstance(secret, str) else secret
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace")):
        raise WebhookRejected(403, f"{header} does not match this request")


# --- outbound --------------------------------------------------------------------------


def standard_key(secret: str | bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret: a `whsec_<base64>` string decoded as
    every receiver's library decodes it (padding optional), or raw bytes as they are.
    Raises ValueError for an empty or malformed secret, so a bad setting fails at start
    rather than at every send."""
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
        if not _BASE64.fullmatch(encoded):
            raise ValueError(f"a Standard Webhooks secret is {STANDARD_SECRET_PREFIX}<base64>")
        try:
            key = base64.b64decode(encoded + "==")
        except binascii.Error as exc:
            raise ValueError(f"a Standard Webhooks secret is {STANDARD_SECRET_PREFIX}<base64>: "
                             f"{exc}") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def sign_standard(secret: str | bytes, msg_id: str, body: bytes,
                  timestamp: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt at sending `body`. `msg_id` stays
    the same across retries of one message, so the receiver can drop a repeat;
    `timestamp` (aware) is the attempt's, so a captured request expires."""
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    # Whole seconds, in UTC: the library replaces the zone rather than converting it.
    at = timestamp.astimezone(UTC).replace(microsecond=0)
    signature = Webhook(standard_key(secret)).sign(msg_id, at, body.decode())
    return {STANDARD_ID_HEADER: msg_id, STANDARD_TIMESTAMP_HEADER: str(int(at.timestamp())),
            STANDARD_SIGNATURE_HEADER: signature}


def push_secret(settings: Settings) -> bytes:
    """The key our push webhook is signed with: PUSH_WEBHOOK_SECRET (`whsec_<base64>`,
    what a receiver's Standard Webhooks library is given). It must be its own secret:
    NOTIFY_SECRET signs opt-out links, and a receiver holding it could forge them. Raises
    ValueError when it is unset or empty, so a push channel without it fails at start."""
    configured = settings.push_webhook_secret
    if configured is None or not configured.get_secret_value():
        raise ValueError("PUSH_WEBHOOK_URL is set but PUSH_WEBHOOK_SECRET is not: give the "
                         "push webhook its own whsec_<base64> secret")
    return standard_key(configured.get_secret_value())
