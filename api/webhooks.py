"""FastAPI dependencies for inbound webhooks: each reads the raw request, proves its
sender through `backorders.webhooks`, and hands the route only what was signed. A request
that fails answers 401/403 before the route runs, so it changes nothing."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from api.deps import ServicesDep
from backorders.services.errors import DomainError, Forbidden, Unauthorized
from backorders.webhooks import TWILIO_SIGNATURE_HEADER, WebhookRejected, verify_twilio


def public_url(request: Request, public_base_url: str) -> str:
    """The URL the sender called, as it knows it: behind a proxy the app sees another
    host and scheme, and the signature covers the public one."""
    query = request.url.query
    return public_base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def _refusal(exc: WebhookRejected) -> DomainError:
    if exc.status_code == 401:
        return Unauthorized("unauthorized", exc.message)
    return Forbidden("forbidden", exc.message)


async def twilio_form(request: Request, services: ServicesDep) -> dict[str, str]:
    """The form parameters of a request signed by Twilio (`X-Twilio-Signature`). Blank
    values are kept, since Twilio signs them too; a repeated name keeps its last value
    and so no longer matches the signature: refused, never half-read."""
    settings = services.settings
    params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                            keep_blank_values=True))
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    try:
        verify_twilio(token, public_url(request, settings.public_base_url), params,
                      request.headers.get(TWILIO_SIGNATURE_HEADER))
    except WebhookRejected as exc:
        raise _refusal(exc) from None
    return params


TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]

SIGNED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "The request carries no signature."},
    403: {"description": "The signature does not prove the sender, or no secret is configured."},
}
"""For the decorator of a route with a signed-webhook dependency: the access gate
documents no 401/403 for a public route, yet this one answers them."""
