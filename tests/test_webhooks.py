"""Webhook signatures: the SMS webhook through the real app accepts only what Twilio
signed for our public URL, and changes nothing otherwise; the Standard Webhooks and
body-only checks that later channel webhooks share; the push secret from settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from temporalio.testing import WorkflowEnvironment
from twilio.request_validator import RequestValidator

from backorders.notify.service import senders_from_settings
from backorders.settings import Settings
from backorders.webhooks import (
    WebhookRejected,
    push_secret,
    sign_standard,
    standard_key,
    verify_hmac_sha256,
    verify_standard,
)
from tests.support import RunningWorker

TOKEN = "twilio-auth-token-for-the-tests"
PUBLIC = "https://backorders.example"
INTERNAL = "http://10.0.0.5:8000"
"""Where the app itself is reached, behind the proxy: not what Twilio signs."""
SMS_PATH = "/sms/inbound"
PHONE = "+15557654321"
STOP = {"From": PHONE, "Body": "stop", "SmsStatus": "received", "ToCountry": ""}
"""A STOP as Twilio posts it, blank parameter included: Twilio signs that one too."""


def twilio_signature(params: dict[str, str], url: str = PUBLIC + SMS_PATH,
                     token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


@asynccontextmanager
async def sms_client(settings: Settings, db: AsyncEngine,
                     temporal_env: WorkflowEnvironment) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with no API key sent: Twilio has none."""
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=INTERNAL) as client:
            yield client


@pytest.fixture
def twilio_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN),
                                       "public_base_url": PUBLIC + "/"})


@pytest.fixture
async def sms_api(temporal_env: WorkflowEnvironment, db: AsyncEngine, twilio_settings: Settings,
                  worker: RunningWorker) -> AsyncIterator[httpx.AsyncClient]:
    async with db.begin() as conn:
        await conn.execute(sa.text("INSERT INTO customers (id, phone) VALUES ('fay', :phone)"),
                           {"phone": PHONE})
    async with sms_client(twilio_settings, db, temporal_env) as client:
        yield client


async def post_sms(api: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str],
                   path: str = SMS_PATH) -> httpx.Response:
    return await api.post(path, content=urlencode(params), headers={
        "content-type": "application/x-www-form-urlencoded", **headers})


async def opted_out(db: AsyncEngine) -> list[str] | None:
    """Fay's opt-outs, None while she has no preferences row at all."""
    async with db.connect() as conn:
        return (await conn.execute(sa.text(
            "SELECT opted_out FROM customer_preferences WHERE customer_id = 'fay'"))).scalar()


# --- the SMS webhook, through the app --------------------------------------------------


async def test_a_stop_signed_by_twilio_for_the_public_url_opts_the_sender_out(
        sms_api: httpx.AsyncClient, db: AsyncEngine) -> None:
    r = await post_sms(sms_api, STOP, twilio_signature(STOP))

    assert r.status_code == 200, r.text
    assert r.json() == {"opted_out": "sms", "customers": ["fay"]}
    assert await opted_out(db) == ["sms"]


async def test_the_query_string_is_part_of_the_signed_url(
        sms_api: httpx.AsyncClient, db: AsyncEngine) -> None:
    query = "?account=main"
    without = await post_sms(sms_api, STOP, twilio_signature(STOP), path=SMS_PATH + query)
    assert without.status_code == 403, without.text
    assert await opted_out(db) is None

    r = await post_sms(sms_api, STOP, twilio_signature(STOP, PUBLIC + SMS_PATH + query),
                       path=SMS_PATH + query)

    assert r.status_code == 200, r.text
    assert await opted_out(db) == ["sms"]


async def test_an_unsigned_sms_is_401_and_changes_nothing(
        sms_api: httpx.AsyncClient, db: AsyncEngine) -> None:
    r = await post_sms(sms_api, STOP, {})

    assert r.status_code == 401, r.text
    assert r.json() == {"error": "unauthorized", "field": None,
                        "message": "the request carries no X-Twilio-Signature header"}
    assert await opted_out(db) is None


@pytest.mark.parametrize("signature", [
    pytest.param(twilio_signature(STOP, token="another-token"), id="another-token"),
    pytest.param(twilio_signature({**STOP, "Body": "hello"}), id="another-body"),
    pytest.param(twilio_signature(STOP, INTERNAL + SMS_PATH), id="the-internal-url"),
    pytest.param(twilio_signature(STOP, PUBLIC + "/other"), id="another-path"),
    pytest.param({"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, id="garbage"),
])
async def test_a_wrongly_signed_sms_is_403_and_changes_nothing(
        sms_api: httpx.AsyncClient, db: AsyncEngine, signature: dict[str, str]) -> None:
    r = await post_sms(sms_api, STOP, signature)

    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and "PUBLIC_BASE_URL" in r.json()["message"]
    assert await opted_out(db) is None


async def test_a_repeated_parameter_cannot_smuggle_a_value_past_the_signature(
        sms_api: httpx.AsyncClient, db: AsyncEngine) -> None:
    hello = {**STOP, "Body": "hello"}
    r = await sms_api.post(SMS_PATH, content=urlencode(hello) + "&Body=stop",
                           headers={"content-type": "application/x-www-form-urlencoded",
                                    **twilio_signature(hello)})

    assert r.status_code == 403, r.text
    assert await opted_out(db) is None


@pytest.mark.parametrize("token", [None, SecretStr("")], ids=["unset", "empty"])
async def test_without_an_auth_token_every_sms_is_refused(
        temporal_env: WorkflowEnvironment, db: AsyncEngine, twilio_settings: Settings,
        worker: RunningWorker, token: SecretStr | None) -> None:
    unconfigured = twilio_settings.model_copy(update={"twilio_auth_token": token})
    async with db.begin() as conn:
        await conn.execute(sa.text("INSERT INTO customers (id, phone) VALUES ('fay', :phone)"),
                           {"phone": PHONE})

    async with sms_client(unconfigured, db, temporal_env) as api:
        # Signed with the empty token: what anyone could compute.
        r = await post_sms(api, STOP, twilio_signature(STOP, token=""))

    assert r.status_code == 403, r.text
    assert r.json()["message"] == "TWILIO_AUTH_TOKEN is not configured: inbound SMS are refused"
    assert await opted_out(db) is None


def test_the_sms_webhook_documents_its_401_and_403(twilio_settings: Settings) -> None:
    from api.app import create_app

    operation = create_app(twilio_settings).openapi()["paths"][SMS_PATH]["post"]

    assert {"401", "403"} <= set(operation["responses"])
    assert operation["security"] == []  # public: Twilio proves itself with its signature


# --- Standard Webhooks -----------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"a-sender-secret").decode()
BODY = b'{"event":"order.created","id":1}'


def standard_headers(secret: str | bytes = SECRET, at: datetime | None = None,
                     body: bytes = BODY) -> dict[str, str]:
    return sign_standard(secret, "msg_1", body, at or datetime.now(UTC))


def test_what_sign_standard_signs_the_reference_library_verifies() -> None:
    headers = standard_headers()

    assert Webhook(SECRET).verify(BODY, headers) == {"event": "order.created", "id": 1}
    verify_standard(SECRET, headers, BODY)  # and so does ours
    assert headers["webhook-id"] == "msg_1"


def test_a_timestamp_in_another_zone_is_signed_as_the_same_instant() -> None:
    at = datetime.now(timezone(timedelta(hours=2)))

    headers = standard_headers(at=at)

    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    verify_standard(SECRET, headers, BODY)


def test_sign_standard_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_standard(SECRET, "msg_1", BODY, datetime.now())


def test_verify_standard_answers_401_without_the_headers() -> None:
    headers = standard_headers()
    del headers["webhook-signature"]

    with pytest.raises(WebhookRejected) as rejected:
        verify_standard(SECRET, headers, BODY)

    assert rejected.value.status_code == 401 and "webhook-signature" in rejected.value.message


def _now(minutes: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


# Built at call time, so a slow run never turns every case into a stale one.
UNPROVEN: dict[str, Callable[[], tuple[dict[str, str], bytes]]] = {
    "another-secret": lambda: (standard_headers(secret=b"another secret"), BODY),
    "another-body": lambda: (standard_headers(), BODY + b" "),
    "stale": lambda: (standard_headers(at=_now(-6)), BODY),
    "future": lambda: (standard_headers(at=_now(6)), BODY),
    "redated": lambda: ({**standard_headers(at=_now(-6)),
                         "webhook-timestamp": str(int(_now().timestamp()))}, BODY),
    "malformed": lambda: ({**standard_headers(), "webhook-signature": "v1"}, BODY),
}


@pytest.mark.parametrize("case", sorted(UNPROVEN))
def test_verify_standard_answers_403_for_a_signature_that_proves_nothing(case: str) -> None:
    headers, body = UNPROVEN[case]()

    with pytest.raises(WebhookRejected) as rejected:
        verify_standard(SECRET, headers, body)

    assert rejected.value.status_code == 403


def test_a_malformed_standard_secret_is_refused() -> None:
    for bad in ("whsec_not base64!", "whsec_", b""):
        with pytest.raises(ValueError):
            standard_key(bad)


# --- body-only HMAC (Shopify, WooCommerce) ---------------------------------------------

SHOPIFY = "X-Shopify-Hmac-Sha256"


def test_a_body_signed_with_base64_hmac_sha256_is_accepted() -> None:
    signature = base64.b64encode(hmac.new(b"shop-secret", BODY, hashlib.sha256).digest()).decode()

    verify_hmac_sha256("shop-secret", BODY, signature, header=SHOPIFY)


@pytest.mark.parametrize(("signature", "status"), [
    (None, 401),
    ("", 401),
    (base64.b64encode(hmac.new(b"other", BODY, hashlib.sha256).digest()).decode(), 403),
    (hmac.new(b"shop-secret", BODY, hashlib.sha256).hexdigest(), 403),  # hex is not base64
])
def test_a_body_only_signature_that_proves_nothing_is_refused(signature: str | None,
                                                              status: int) -> None:
    with pytest.raises(WebhookRejected) as rejected:
        verify_hmac_sha256("shop-secret", BODY, signature, header=SHOPIFY)

    assert rejected.value.status_code == status and SHOPIFY in rejected.value.message


# --- the push secret -------------------------------------------------------------------


def test_the_push_secret_is_push_webhook_secret_as_a_receiver_decodes_it() -> None:
    settings = Settings(_env_file=None, push_webhook_secret=SecretStr(SECRET))

    headers = sign_standard(push_secret(settings), "msg_1", BODY, datetime.now(UTC))

    Webhook(SECRET).verify(BODY, headers)


@pytest.mark.parametrize("configured", [None, SecretStr("")], ids=["unset", "empty"])
def test_a_push_webhook_without_its_own_secret_refuses_to_start(
        configured: SecretStr | None) -> None:
    settings = Settings(_env_file=None, notify_secret=SecretStr("a-long-notify-secret"),
                        push_webhook_url="http://127.0.0.1:9/push",
                        push_webhook_secret=configured)

    with pytest.raises(ValueError, match="PUSH_WEBHOOK_SECRET"):
        senders_from_settings(settings)
