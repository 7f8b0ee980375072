"""Prometheus metrics of the API processes and of the ledger (`api.observe`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import ServicesDep
from api.observe import exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(services: ServicesDep) -> Response:
    """Prometheus text format: requests by route, allocation times, and the ledger's
    gauges (waiting units, hand-off backlog, dead messages, notifications)."""
    body, content_type = exposition(await services.gauges.get())
    return Response(body, media_type=content_type)
