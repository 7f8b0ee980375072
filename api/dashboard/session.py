"""The dashboard's cookies: a signed, HttpOnly, SameSite session cookie holding the id of
a server-side session (`backorders.services.sessions`), never a key; and, for the
sign-in form itself, a signed form-token cookie (double submit), so a third-party page
cannot sign a browser in or out.

Cookies are signed with a key derived from API_KEY_PEPPER, so there is no extra secret
to manage. Revoking the key, or signing out, ends the session server-side at once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from http.cookies import SimpleCookie

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from starlette.types import Scope

from backorders.services import sessions
from backorders.services.sessions import Session
from backorders.settings import Settings

COOKIE = "bo_dashboard"
FORM_COOKIE = "bo_dashboard_form"
CSRF_FIELD = "csrf"
FORM_TOKEN_SECONDS = 3600

__all__ = ["COOKIE", "CSRF_FIELD", "Session", "csrf_valid", "end", "find", "start"]


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    key = hmac.new(settings.api_key_pepper.get_secret_value().encode(), b"dashboard session",
                   hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=salt)


def _lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.dashboard_session_hours)


def _cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope.get("headers", ()):
        if header == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(name)
            if morsel is not None:
                return morsel.value
    return None


def _set(settings: Settings, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/dashboard", httponly=True,
                        samesite="lax", secure=settings.public_base_url.startswith("https://"))


async def find(engine: AsyncEngine, settings: Settings, scope: Scope) -> Session | None:
    """The live session the request's cookie names: signature, age, and the row."""
    raw = _cookie(scope, COOKIE)
    if raw is None:
        return None
    try:
        session_id = _serializer(settings, "session").loads(
            raw, max_age=int(_lifetime(settings).total_seconds()))
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(session_id, str):
        return None
    return await sessions.find(engine, session_id)


async def start(engine: AsyncEngine, settings: Settings, response: Response,
                key_id: str) -> None:
    session_id = await sessions.open_session(engine, key_id, _lifetime(settings))
    _set(settings, response, COOKIE, _serializer(settings, "session").dumps(session_id),
         int(_lifetime(settings).total_seconds()))
    response.delete_cookie(FORM_COOKIE, path="/dashboard")


async def end(engine: AsyncEngine, response: Response, found: Session | None) -> None:
    if found is not None:
        await sessions.end(engine, found.id)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="lax")


def form_token(settings: Settings, scope: Scope) -> tuple[str, bool]:
    """The sign-in form's token: the one its cookie holds while it lives, else a new one
    (True: the response must set it with `set_form_token`)."""
    raw = _cookie(scope, FORM_COOKIE)
    if raw is not None:
        try:
            token = _serializer(settings, "form").loads(raw, max_age=FORM_TOKEN_SECONDS)
            if isinstance(token, str):
                return token, False
        except BadSignature:
            pass
    return secrets.token_urlsafe(18), True


def set_form_token(settings: Settings, response: Response, token: str) -> None:
    _set(settings, response, FORM_COOKIE, _serializer(settings, "form").dumps(token),
         FORM_TOKEN_SECONDS)


def form_token_valid(settings: Settings, scope: Scope, presented: str | None) -> bool:
    raw = _cookie(scope, FORM_COOKIE)
    if raw is None or not presented:
        return False
    try:
        token = _serializer(settings, "form").loads(raw, max_age=FORM_TOKEN_SECONDS)
    except BadSignature:
        return False
    return isinstance(token, str) and hmac.compare_digest(token, presented)


def csrf_valid(found: Session | None, presented: str | None) -> bool:
    return bool(found and presented and hmac.compare_digest(found.csrf, presented))
