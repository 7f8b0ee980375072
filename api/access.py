"""Who may call what: the one table of access rules, and the gate that applies it.

Every route has a rule here; the app refuses to start with a route that has none. The
gate runs before a request's body is read: it finds the route, proves the key
(`Authorization: Bearer bo_<id>_<secret>`), counts the request against the key's rate
limit, checks the role, and leaves the caller and the write's audit record on the
request for the route. A write the route did not complete (refused, failed, forbidden)
is recorded in the audit trail afterwards, with its status.

A channel key passes the gate only for routes marked `scoped`; those routes then show
it its own channel's orders alone (`Caller.sees_channel`)."""

from __future__ import annotations

import hmac
import html
import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute, iter_route_contexts
from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.convertors import Convertor
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.dashboard import session as dashboard_session
from backorders.domain.access import Caller, Role
from backorders.services import keys
from backorders.services.audit import Audit, record_refusal
from backorders.services.errors import DomainError, Forbidden, NotFound, TooManyRequests, Unauthorized
from backorders.settings import Settings

log = logging.getLogger(__name__)

CHANNEL, ERP, OPS, ADMIN = Role.CHANNEL, Role.ERP, Role.OPS, Role.ADMIN


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role] = frozenset()
    public: bool = False
    """No key needed: the route proves its caller some other way, or needs no proof."""
    scoped: bool = False
    """A channel key may call it, for its own channel's orders only."""
    why: str = ""
    session: bool = False
    """A dashboard page: the caller is the key its signed session cookie names, and a
    caller without one is sent to sign in."""
    limited: bool = True
    """Counted against the caller's rate limit (probes are not: a flood of bad keys from
    one address must not make the load balancer drop the instance)."""
    metrics_token: bool = False
    """The metrics token is accepted in place of a key."""

    def allows(self, role: Role) -> bool:
        return role is ADMIN or role in self.roles


def allow(*roles: Role, scoped: bool = False) -> Rule:
    return Rule(roles=frozenset(roles), scoped=scoped)


def page(*roles: Role) -> Rule:
    return Rule(roles=frozenset(roles), session=True)


def scraper(*roles: Role) -> Rule:
    """For Prometheus: a key with one of `roles`, or the metrics token (METRICS_TOKEN)
    so a scraper needs no API key; not rate limited."""
    return Rule(roles=frozenset(roles), metrics_token=True, limited=False)


def public(why: str, *, limited: bool = True) -> Rule:
    return Rule(public=True, why=why, limited=limited)


ADMIN_ONLY = allow()

RULES: dict[str, Rule] = {
    # orders: channels place them; a channel key sees and cancels only its own.
    "POST /orders": allow(CHANNEL, scoped=True),
    "GET /orders": allow(CHANNEL, ERP, OPS, scoped=True),
    "GET /orders/{order_id}": allow(CHANNEL, ERP, OPS, scoped=True),
    "POST /orders/{order_id}/cancel": allow(CHANNEL, OPS, scoped=True),
    "GET /backorders": allow(CHANNEL, ERP, OPS, scoped=True),
    "GET /backorders/{line_id}": allow(CHANNEL, ERP, OPS, scoped=True),
    "POST /backorders/{line_id}/delay": allow(OPS),
    # the ERP's side: catalogue, stock, receipts, supply.
    "PUT /products/{sku}": allow(ERP),
    "GET /products/{sku}": allow(ERP, OPS),
    "PUT /inventory/{sku}": allow(ERP),
    "GET /inventory/{sku}": allow(ERP, OPS),
    "POST /receipts": allow(ERP),
    "GET /receipts/{receipt_id}": allow(ERP, OPS),
    "PUT /purchase-orders/{po_number}": allow(ERP),
    "GET /purchase-orders/{po_number}": allow(ERP, OPS),
    "GET /suppliers": allow(ERP, OPS),
    "GET /suppliers/{supplier_id}/performance": allow(ERP, OPS),
    "GET /refunds": allow(ERP, OPS),
    # customers and their messages: ops.
    "PUT /customers/{customer_id}/preferences": allow(OPS),
    "GET /customers/{customer_id}/preferences": allow(OPS),
    "GET /notifications": allow(OPS),
    "GET /customers/{customer_id}/opt-out": public("the link carries its own signed token"),
    "POST /sms/inbound": public("signed by the SMS provider (X-Twilio-Signature)"),
    # operations.
    "GET /ops/outbox": allow(OPS),
    "POST /ops/outbox/{message_id}/replay": allow(OPS),
    "GET /ops/audit": allow(OPS),
    "GET /ops/intake": allow(OPS),
    "POST /ops/intake/{intake_id}/replay": allow(OPS),
    "POST /ops/intake/replay": allow(OPS),
    # channels: the registry is the admin's; platforms prove themselves by signature.
    "PUT /channels/{name}": ADMIN_ONLY,
    "GET /channels": allow(OPS),
    "POST /channels/{name}/orders": public("signed by the platform with the channel's secret"),
    "GET /channels/{name}/acknowledgements/{intake_id}": allow(CHANNEL, ERP, OPS, scoped=True),
    "GET /kpis": allow(OPS),
    "GET /kpis/series": allow(OPS),
    # forecasting: purchasing works from the ERP, ops from the dashboard.
    "GET /forecast/{sku}": allow(ERP, OPS),
    "GET /replenishment": allow(ERP, OPS),
    "POST /admin/keys": ADMIN_ONLY,
    "GET /admin/keys": ADMIN_ONLY,
    "DELETE /admin/keys/{key_id}": ADMIN_ONLY,
    # the dashboard: people signed in with an ops or admin key.
    "GET /dashboard": page(OPS),
    "GET /dashboard/backorders": page(OPS),
    "GET /dashboard/backorders.csv": page(OPS),
    "GET /dashboard/products": page(OPS),
    "GET /dashboard/products/{sku}": page(OPS),
    "GET /dashboard/lines/{line_id}": page(OPS),
    "GET /dashboard/suppliers": page(OPS),
    "GET /dashboard/replenishment": page(OPS),
    "GET /dashboard/forecast/{sku}": page(OPS),
    "GET /dashboard/notifications": page(OPS),
    "GET /dashboard/operations": page(OPS),
    "POST /dashboard/operations/outbox/{message_id}/replay": page(OPS),
    "POST /dashboard/operations/intake/{intake_id}/replay": page(OPS),
    "POST /dashboard/operations/intake/replay": page(OPS),
    "GET /dashboard/login": public("the sign-in form"),
    "POST /dashboard/login": public("proves the key typed into the form"),
    "POST /dashboard/logout": public("ends whatever session the cookie holds"),
    "GET /health": public("load balancers and probes", limited=False),
    "GET /health/live": public("the orchestrator's liveness probe", limited=False),
    "GET /health/ready": public("the load balancer's readiness probe", limited=False),
    "GET /metrics": scraper(OPS),
    "GET /": public("redirects to the dashboard"),
}

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNAUDITED = "not recorded in the change's transaction"
"""The detail of an audit row the gate had to write after a completed change; tests
require that none exist."""


@dataclass(frozen=True)
class Operation:
    name: str
    """"METHOD /path", as the rules and the OpenAPI document name it."""
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]


def operations(app: FastAPI) -> list[Operation]:
    """Every operation the app serves (its included routers flattened), with the
    pattern its path matches."""
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or context.path is None:
            continue
        regex, _, convertors = compile_path(context.path)
        found += [Operation(f"{method} {context.path}", regex, convertors)
                  for method in sorted(context.methods or ())]
    return found


def check_rules(app: FastAPI) -> None:
    """A route without a rule would be open or shut by accident: refuse to start."""
    served = {op.name for op in operations(app)}
    missing, stale = served - RULES.keys(), RULES.keys() - served
    if missing or stale:
        raise RuntimeError(f"access rules out of step with the routes: without a rule "
                           f"{sorted(missing)}, rules for no route {sorted(stale)} (api/access.py)")


# --- the gate ---------------------------------------------------------------------------


class RateLimits:
    """Requests per key, or per client address where no key is needed, through `limits`.
    The memory store counts per process; a shared store counts across API processes."""

    def __init__(self, settings: Settings) -> None:
        uri = settings.api_rate_limit_storage
        self.items: list[RateLimitItem] = parse_many(settings.api_rate_limit)
        self.limiter = MovingWindowRateLimiter(
            storage_from_string(uri if uri.startswith("async+") else f"async+{uri}"))

    async def spend(self, who: str) -> None:
        for item in self.items:
            if not await self.limiter.hit(item, who):
                stats = await self.limiter.get_window_stats(item, who)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(
                    "rate_limited", f"more than {item} requests; retry in {retry_after} s",
                    retry_after=retry_after)


def _route(table: list[Operation], scope: Scope) -> tuple[Operation, dict[str, Any]] | None:
    """The operation a request is for, and its path parameters; None when the router
    will answer 404 or 405."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    method = "GET" if scope["method"] == "HEAD" else scope["method"]
    for op in table:
        match = op.regex.match(path)
        if match and op.name.startswith(method + " "):
            return op, {k: op.convertors[k].convert(v) for k, v in match.groupdict().items()}
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


def _needed(rule: Rule) -> str:
    roles = [r.value for r in Role if r in rule.roles] + [ADMIN.value]
    return " or ".join(roles)


async def identify(services: Any, rule: Rule, scope: Scope) -> Caller | None:
    """The caller a route's key proves (None for a public route), within its rate."""
    limits: RateLimits = services.rate_limits
    if rule.public:
        if rule.limited:
            await limits.spend(_client(scope))
        return None
    if rule.session:
        return await _session_caller(services, scope)
    presented = _bearer(scope)
    token = services.settings.metrics_token
    if rule.metrics_token and presented and token is not None and hmac.compare_digest(
            presented.encode(), token.get_secret_value().encode()):
        return None
    caller = await keys.authenticate(services.engine, services.settings, presented) \
        if presented else None
    if caller is None:  # every failed attempt counts, or keys could be guessed freely
        await limits.spend(_client(scope))
        raise Unauthorized("unauthorized", "send a valid API key: `Authorization: Bearer <key>`"
                           if presented is None else "this API key is not valid")
    if rule.limited:
        await limits.spend(f"key:{caller.key_id}")
    return caller


async def _session_caller(services: Any, scope: Scope) -> Caller:
    found = await dashboard_session.find(services.engine, services.settings, scope)
    caller = found.caller if found else None
    if caller is None:
        await services.rate_limits.spend(_client(scope))
        raise Unauthorized("unauthorized", "sign in to the dashboard with an ops or admin key")
    await services.rate_limits.spend(f"key:{caller.key_id}")
    scope.setdefault("state", {})["session"] = found
    return caller


def authorize(caller: Caller, rule: Rule, name: str) -> None:
    assert caller.role is not None
    if not rule.allows(caller.role):
        raise Forbidden("forbidden", f"{name} needs a key with role {_needed(rule)}; "
                        f"this key's role is {caller.role.value}")


class AccessGate:
    """ASGI middleware: admits or refuses each request before its body is read, and
    audits the writes that did not complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.table: list[Operation] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        cap = app.state.services.settings.api_max_body_bytes
        if _declared_too_large(scope, cap):
            await _too_large(cap)(scope, receive, send)
            return
        if self.table is None:
            self.table = operations(app)
        matched = _route(self.table, scope)
        if matched is None:  # the router answers 404 or 405
            await self.app(scope, receive, send)
            return
        op, params = matched
        scope.setdefault("state", {})["operation"] = op.name
        method, path = scope["method"], op.name.partition(" ")[2]
        services = app.state.services
        rule = RULES[op.name]
        caller = audit = None
        try:
            caller = await identify(services, rule, scope)
            if caller is not None:
                authorize(caller, rule, op.name)
        except DomainError as exc:
            if isinstance(exc, Forbidden) and method in WRITES:  # a known key, not allowed
                assert caller is not None
                await _refused(services, Audit(caller, method, path, resource=_resource(params)),
                               exc.status_code, f"{exc.code}: {exc.message}")
            respond = _page_error if rule.session else _error
            await respond(exc, scope)(scope, receive, send)
            return
        except (DBAPIError, PoolTimeout, StorageError, OSError):
            log.warning("database or rate-limit store unavailable while checking a key",
                        exc_info=True)
            await _unavailable()(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["caller"] = caller
        if caller is not None and method in WRITES:
            audit = state["audit"] = Audit(caller, method, path, resource=_resource(params))
        if audit is None:
            await self.app(scope, receive, send)
            return

        answered = _Answer()

        async def watch(message: Message) -> None:
            answered.see(message)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            answered.status = answered.status or 500
            raise
        finally:
            if not audit.recorded:
                status = answered.status or 500
                if status < 400:  # a route whose service did not audit in its transaction
                    log.error("%s %s answered %s without auditing the change in its "
                              "transaction", method, path, status)
                    audit.detail = UNAUDITED
                await _refused(services, audit, status,
                               UNAUDITED if status < 400 else answered.detail())


class _Answer:
    """The status and the start of the body of a response, for the audit trail."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and len(self.body) < 2048:
            self.body += message.get("body", b"")[:2048]

    def detail(self) -> str | None:
        try:
            payload = json.loads(self.body)
            return f"{payload['error']}: {payload['message']}"[:500]
        except Exception:
            return None


def _resource(params: dict[str, Any]) -> str | None:
    """The first path parameter, a UUID in its canonical form, so the audit trail is
    searchable by the id the API answers with, however the client spelled it."""
    if not params:
        return None
    value = str(next(iter(params.values())))
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


async def _refused(services: Any, audit: Audit, status: int, detail: str | None) -> None:
    try:
        await record_refusal(services.engine, audit, status, detail)
    except Exception:
        log.warning("could not audit %s %s (%s)", audit.method, audit.path, status, exc_info=True)


def _page_error(exc: DomainError, scope: Scope) -> Response:
    """A person at the dashboard is sent to sign in, or told which key they need."""
    if isinstance(exc, Unauthorized):
        path = scope.get("path", "/dashboard")
        query = scope.get("query_string", b"").decode("latin-1")
        # Back to the page after signing in; a form's POST goes back to the dashboard.
        target = path + (f"?{query}" if query else "") if scope["method"] == "GET" \
            else "/dashboard"
        return RedirectResponse("/dashboard/login?" + urlencode({"next": target}),
                                status_code=303)
    status = exc.status_code
    message = html.escape(exc.message)
    if isinstance(exc, Forbidden):
        message = ("The dashboard is for ops and admin keys; this key's role may not see it. "
                   "Sign out and sign in with an ops or admin key.")
    found = scope.get("state", {}).get("session")
    token = (f"<input type=hidden name=csrf value=\"{html.escape(found.csrf)}\">"
             if found is not None else "")
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{status}</title>"
        f"<link rel=stylesheet href=/dashboard/static/dashboard.css>"
        f"<main class=narrow><h1>{status} {html.escape(exc.code.replace('_', ' '))}</h1>"
        f"<p>{message}</p><form method=post action=/dashboard/logout>{token}"
        f"<button>Sign out</button></form></main></html>",
        status_code=status, headers=headers)


def _error(exc: DomainError, scope: Scope | None = None) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="backorders"'}
    return JSONResponse(status_code=exc.status_code, headers=headers,
                        content={"error": exc.code, "message": exc.message, "field": exc.field})


def _declared_too_large(scope: Scope, limit: int | None) -> bool:
    """A body whose declared length is over the cap is refused before anything reads it.
    FastAPI's own limit (`max_body_size` on each router) counts the bytes of a body that
    declares no length, as they arrive."""
    if limit is None:
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False


def _too_large(limit: int | None) -> JSONResponse:
    return JSONResponse(status_code=413, content={
        "error": "payload_too_large", "field": None,
        "message": f"the request body is larger than the limit of {limit} bytes"})


def _unavailable() -> JSONResponse:
    return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                        content={"error": "database_unavailable",
                                 "message": "the database is unavailable; retry shortly",
                                 "field": None})


# --- what routes read -------------------------------------------------------------------


def get_caller(request: Request) -> Caller:
    caller = request.state.caller
    assert caller is not None, "a public route has no caller"
    return caller


def get_audit(request: Request) -> Audit:
    return request.state.audit


CallerDep = Annotated[Caller, Depends(get_caller)]
AuditDep = Annotated[Audit, Depends(get_audit)]


def own_channel(caller: Caller, channel: str, unknown: NotFound) -> None:
    """A channel key asking for another channel's order gets exactly the answer an
    unknown order gets (`unknown`): it learns nothing about other channels."""
    if not caller.sees_channel(channel):
        raise unknown


# --- the OpenAPI document ---------------------------------------------------------------

ERROR_SCHEMA = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "field": {"type": ["string", "null"]}}}


def document(app: FastAPI) -> None:
    """Declare the bearer scheme and, per operation, the roles that may call it and the
    401/403/429 it can answer, so the docs' Authorize button and clients know."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKey"] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "bo_<id>_<secret>",
            "description": "An API key from `python -m backorders keys create` or POST /admin/keys."}
        error = {"content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                rule = RULES.get(f"{method.upper()} {path}")
                if rule is None:
                    continue
                responses = operation.setdefault("responses", {})
                responses["429"] = {"description": "Rate limit reached; see Retry-After", **error}
                if method.upper() in WRITES:
                    responses["413"] = {"description": "Request body too large", **error}
                if rule.public:
                    operation["security"] = []
                    continue
                operation["security"] = [{"ApiKey": []}]
                operation["x-roles"] = sorted({r.value for r in rule.roles} | {ADMIN.value})
                responses["401"] = {"description": "No valid API key", **error}
                responses["403"] = {"description": f"Needs role {_needed(rule)}", **error}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
