"""Prometheus metrics of the API processes and of the ledger (`api.observe`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import ServicesDep
from api.observe import exposition

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(services: ServicesDep) -> Response:
    """Prometheus text format: requests by route, allocation times, and the ledger's
    gauges (waiting units, hand-off backlog, dead messages, notifications)."""
    try:
        gauges = await services.gauges.get()
    except Exception as exc:  # the process's own figures matter most when the ledger is away
        log.warning("metrics: the ledger's gauges are unavailable: %r", exc)
        gauges = None
    body, content_type = exposition(gauges)
    return Response(body, media_type=content_type)
