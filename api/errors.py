"""Every error answers with the same shape: a stable `error` code, a `message` a person
can act on, and the `field` (or `fields`) at fault. A client's mistake is always a 4xx;
an unavailable database is a 503 with a retry hint, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from backorders.services.errors import DomainError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'lines', 0, 'quantity') -> 'lines[0].quantity'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        loc = err.get("loc", ())
        # pydantic puts the tagged type in the location of union members; drop it.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
        message = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            message = f"request body is not valid JSON: {err.get('ctx', {}).get('error', message)}"
        fields.append({"field": field_path(loc), "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    if request.method == "POST" and request.url.path == "/orders":
        await _keep_unreadable_order(request, summary, fields[0]["field"] if fields else None)
    return JSONResponse(
        status_code=422,
        content={"error": "validation_error", "message": summary, "fields": fields,
                 "field": fields[0]["field"] if fields else None},
    )


async def _keep_unreadable_order(request: Request, message: str, field: str | None) -> None:
    """Every payload a channel sends is recorded, even one that is not an order."""
    from backorders.services import intake

    caller = getattr(request.state, "caller", None)
    channel = caller.channel if caller is not None and caller.channel else "unknown"
    try:
        services = request.app.state.services
        await intake.record_unreadable(services.engine, services.settings, channel,
                                       await request.body(), request.headers.get("content-type"),
                                       message[:2000], field)
    except Exception:
        log.warning("could not record an unreadable order", exc_info=True)


def _domain(request: Request, exc: DomainError) -> JSONResponse:
    log.info("%s %s refused: %s (%s) %s", request.method, request.url.path, exc.code,
             exc.field, exc.message)
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": exc.code, "message": exc.message, "field": exc.field},
        headers={"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else
        {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None,
    )


BODY_NOT_PARSED = "There was an error parsing the body"
"""What FastAPI raises (as a 400) for a body it cannot even decode, such as bytes that are
not UTF-8 under a JSON content type; answered like any other malformed body."""


def _http(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == BODY_NOT_PARSED:
        message = "body: request body is not valid JSON"
        return JSONResponse(
            status_code=422,
            content={"error": "validation_error", "message": message, "field": "body",
                     "fields": [{"field": "body", "message": "request body is not valid JSON"}]},
        )
    code = {404: "not_found", 405: "method_not_allowed",
            413: "payload_too_large"}.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 413:
        limit = request.app.state.services.settings.api_max_body_bytes
        message = f"the request body is larger than the limit of {limit} bytes"
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": code, "message": message, "field": None},
        headers=getattr(exc, "headers", None),
    )


def _database(_: Request, exc: DBAPIError) -> JSONResponse:
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        log.warning("database unavailable: %s", exc.orig)
        return JSONResponse(
            status_code=503,
            content={"error": "database_unavailable",
                     "message": "the database is unavailable; retry shortly", "field": None},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    raise exc


def _saturated(_: Request, exc: PoolTimeout) -> JSONResponse:
    """Every database connection is busy past the pool's timeout: shed the load honestly
    rather than let the client's own timeout decide."""
    log.warning("database saturated: %s", exc)
    return JSONResponse(
        status_code=503,
        content={"error": "database_saturated",
                 "message": "the database is saturated; retry shortly", "field": None},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _domain)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeout, _saturated)  # type: ignore[arg-type]
