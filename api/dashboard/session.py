"""The dashboard's sign-in: a signed, HttpOnly, SameSite cookie that names the API key
proven at sign-in (never the key itself), with a token for the page's forms.

The cookie is signed with a key derived from API_KEY_PEPPER, so there is no extra secret
to manage; it expires after DASHBOARD_SESSION_HOURS, and the gate reads the key's row on
every request, so revoking the key ends its sessions at once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response
from starlette.types import Scope

from backorders.settings import Settings

COOKIE = "bo_dashboard"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    key_id: str
    csrf: str


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    key = hmac.new(settings.api_key_pepper.get_secret_value().encode(), b"dashboard session",
                   hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt="backorders.dashboard")


def _max_age(settings: Settings) -> int:
    return int(settings.dashboard_session_hours * 3600)


def read(settings: Settings, scope: Scope) -> Session | None:
    """The session a request's cookie carries, if its signature holds and it is fresh."""
    for name, value in scope.get("headers", ()):
        if name != b"cookie":
            continue
        morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
        if morsel is None:
            continue
        try:
            data = _serializer(settings).loads(morsel.value, max_age=_max_age(settings))
        except BadSignature:  # includes SignatureExpired
            return None
        if isinstance(data, dict) and isinstance(data.get("k"), str) \
                and isinstance(data.get("c"), str):
            return Session(data["k"], data["c"])
    return None


def start(settings: Settings, response: Response, key_id: str) -> None:
    token = _serializer(settings).dumps({"k": key_id, "c": secrets.token_urlsafe(18)})
    response.set_cookie(COOKIE, token, max_age=_max_age(settings), path="/dashboard",
                        httponly=True, samesite="lax",
                        secure=settings.public_base_url.startswith("https://"))


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="lax")


def csrf_valid(session: Session | None, presented: str | None) -> bool:
    return bool(session and presented and hmac.compare_digest(session.csrf, presented))
