"""The FastAPI application. `create_app()` is what uvicorn serves; tests build it with
their own engine and Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api import errors
from api.deps import Services
from api.routes import (
    backorders,
    catalog,
    health,
    notifications,
    ops,
    orders,
    receipts,
    supply,
)
from backorders import logs
from backorders.db import create_engine, dispose
from backorders.settings import Settings, get_settings
from backorders.temporal import connect
from handoff.deliver import OutboxDeliverer


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
        db = engine or create_engine(settings)
        temporal = client or await connect(settings, lazy=True)
        app.state.services = Services(settings, db, temporal,
                                      OutboxDeliverer(db, temporal, settings))
        yield
        if own_engine:
            await dispose(db)

    app = FastAPI(
        title="Backorders",
        version="0.1.0",
        summary="Split orders, wait durably for stock, allocate fairly, dispatch.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (orders, receipts, catalog, backorders, supply, notifications, ops, health):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (`--factory`)."""
    settings = get_settings()
    logs.setup(settings.log_level)
    return create_app(settings)
