from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from backorders.db import ping
from backorders.services import gauges, schema

router = APIRouter(tags=["health"])


async def _backlog(services: Any) -> dict[str, object]:
    """What waits to reach the workflows (a burst's backlog, and how old), and what
    gave up: for probes, the dashboard and people."""
    try:
        found = await asyncio.wait_for(gauges.backlog(services.engine), timeout=3)
    except Exception as exc:
        return {"backlog": f"unavailable: {type(exc).__name__}"}
    return {"outbox": {"pending": found.outbox_pending, "dead": found.outbox_dead,
                       "oldest_pending_seconds": round(found.outbox_oldest_pending_seconds, 1)},
            "intake": {"dead": found.intake_dead}}


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
