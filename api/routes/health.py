from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from backorders.db import ping
from backorders.services import schema

router = APIRouter(tags=["health"])


_BACKLOG = sa.text(
    """
    SELECT (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL)
               AS pending,
           (SELECT extract(epoch FROM now() - min(created_at)) FROM outbox
            WHERE delivered_at IS NULL AND dead_at IS NULL) AS oldest_seconds,
           (SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL) AS dead,
           (SELECT count(*) FROM intakes WHERE state = 'dead') AS dead_intakes
    """
)


async def _backlog(services: Any) -> dict[str, object]:
    """What waits to reach the workflows (a burst's backlog, and how old), and what
    gave up: for probes, the dashboard and people."""
    try:
        async with services.engine.connect() as conn:
            row = (await asyncio.wait_for(conn.execute(_BACKLOG), timeout=3)).one()
    except Exception as exc:
        return {"backlog": f"unavailable: {type(exc).__name__}"}
    return {"outbox": {"pending": row.pending, "dead": row.dead,
                       "oldest_pending_seconds": round(float(row.oldest_seconds or 0), 1)},
            "intake": {"dead": row.dead_intakes}}


async def _temporal(services: Any) -> str:
    try:
        await asyncio.wait_for(services.client.service_client.check_health(), timeout=3)
        return "ok"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """Liveness of the API's dependencies, PostgreSQL and Temporal, with the hand-off
    backlog (pending outbox messages and the oldest's age) and what is parked dead."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ping(services.engine), timeout=3)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["temporal"] = await _temporal(services)
    healthy = all(v == "ok" for v in checks.values())
    backlog: dict[str, object] = {}
    if checks["database"] == "ok":
        backlog = await _backlog(services)
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={"status": "ok" if healthy else "degraded", **checks, **backlog},
        headers=None if healthy else {"Retry-After": "5"},
    )


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers: restart it only when this fails. Nothing outside the
    process is asked, so an outage of the database or Temporal never restarts the API."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Send traffic here only when this is 200: the database answers with the schema
    this code expects (migrations current, or a newer release's) and Temporal answers.
    503 with what is not."""
    checks: dict[str, str] = {}
    try:
        current = await asyncio.wait_for(schema.revision(services.engine), timeout=3)
        checks["database"] = "ok"
        checks["migrations"] = schema.verdict(current)
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    checks["temporal"] = await _temporal(services)
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(status_code=200 if healthy else 503,
                        content={"status": "ready" if healthy else "not_ready", **checks},
                        headers=None if healthy else {"Retry-After": "5"})
