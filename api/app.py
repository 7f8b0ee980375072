"""The FastAPI application. `create_app()` is what uvicorn serves; tests build it with
their own engine and Temporal client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api import errors
from api.access import AccessGate, RateLimits, check_rules, document
from api.dashboard import routes as dashboard
from api.deps import Services
from api.observe import Observe
from api.routes import (
    admin,
    backorders,
    catalog,
    channels,
    forecast,
    health,
    kpis,
    notifications,
    ops,
    orders,
    receipts,
    supply,
)
from api.routes import (
    metrics as metrics_route,
)
from backorders import logs, metrics, tracing
from backorders.db import create_engine, dispose
from backorders.services.gauges import Cached
from backorders.settings import DefaultSecret, Settings, get_settings
from backorders.temporal import connect
from handoff.deliver import OutboxDeliverer

DASHBOARD_STATIC = Path(__file__).parent / "dashboard" / "static"


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    client: Client | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db = engine or create_engine(settings, "api")
        temporal = client or await connect(settings, lazy=True)
        app.state.services = Services(settings, db, temporal,
                                      OutboxDeliverer(db, temporal, settings),
                                      RateLimits(settings),
                                      Cached(db, settings.metrics_top_skus,
                                             settings.metrics_cache_seconds))
        yield
        if own_engine:
            await dispose(db)
        directory = metrics.multiprocess_dir()
        if directory:  # this process's live gauges go with it; its counts stay summed
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), directory)

    app = FastAPI(
        title="Backorders",
        version="0.1.0",
        summary="Split orders, wait durably for stock, allocate fairly, dispatch.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(AccessGate)
    app.add_middleware(Observe)  # outermost: ids and metrics for refusals too
    tracing.instrument_app(app, settings)
    for module in (orders, receipts, catalog, backorders, supply, notifications, ops, kpis,
                   forecast, channels, admin, health, metrics_route):
        # The cap is set per router rather than app-wide, where it would replace the
        # gate's JSON 413 with plain text (see `access.AccessGate`).
        app.include_router(module.router, max_body_size=settings.api_max_body_bytes)

    app.include_router(dashboard.router, max_body_size=settings.api_max_body_bytes)
    app.mount("/dashboard/static", StaticFiles(directory=DASHBOARD_STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        """People land on the dashboard (which sends them to sign in); the API is at /docs."""
        return RedirectResponse("/dashboard")

    check_rules(app)
    document(app)
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (`--factory`)."""
    settings = get_settings()
    logs.setup(settings.log_level, settings.log_format)
    try:
        settings.check_secrets()
    except DefaultSecret as exc:
        raise SystemExit(f"api: {exc}") from None
    tracing.setup(settings, "backorders-api")
    return create_app(settings)
