"""Shared fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL / DATABASE_URL),
Temporal's time-skipping test server, and a worker with the outbox relay per test."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from backorders import migrate
from backorders.db import create_engine, dispose
from backorders.embedded.ports import free_port
from backorders.embedded.postgres import EmbeddedPostgres
from backorders.embedded.temporal import TemporalDevServer
from backorders.models import Base
from backorders.settings import Settings
from backorders.temporal import DATA_CONVERTER, connect, ensure_search_attributes
from tests.support import RunningWorker, api_client, start_worker

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytest_plugins = ["tests.fakes.providers"]  # the `provider_server` fixture


MIDNIGHT_MARGIN_S = 30  # longer than any one dated test takes


def _external_server_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"backorders_test_{uuid.uuid4().hex[:8]}"
    external = _external_server_url()
    if external:
        admin = Settings(database_url=external).libpq_url
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.rsplit("/", 1)[0] + f"/{name}"
        migrate.upgrade(url)
        yield url
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", port=free_port(), durable=False)
    pg.start()
    try:
        pg.ensure_database(name)
        url = pg.url_for(name)
        migrate.upgrade(url)
        yield url
    finally:
        pg.stop(mode="immediate")


@pytest_asyncio.fixture
async def one_utc_day() -> None:
    """A test that dates things from today and checks the server's dates must run within
    one UTC day: too close to midnight, it waits for the new day to begin."""
    now = datetime.now(UTC)
    left = (datetime.combine(now.date() + timedelta(days=1), dt_time(), UTC) - now).total_seconds()
    if left < MIDNIGHT_MARGIN_S:
        await asyncio.sleep(left + 0.5)


@pytest.fixture(scope="session")
def base_settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        task_queue="backorders-test",
        warehouse_pick_seconds=0,
        warehouse_pack_seconds=0,
        warehouse_carrier_seconds=0,
        outbox_poll_seconds=0.2,
        outbox_inline_grace_seconds=2.0,
        worker_graceful_shutdown_seconds=0,
        db_pool_size=20,
        db_max_overflow=20,
        api_rate_limit="100000/minute",
        forecast_processes=0,
        metrics_cache_seconds=0,  # the models in a thread: no process to spawn per test
    )


@pytest.fixture
def settings(base_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Each test gets its own task queue, so workflows of other tests never reach it.
    `@pytest.mark.warehouse(pick=30)` slows the simulated warehouse for one test."""
    update: dict[str, object] = {"task_queue": f"test-{uuid.uuid4().hex[:10]}"}
    marker = request.node.get_closest_marker("warehouse")
    if marker is not None:
        for step, seconds in marker.kwargs.items():
            update[f"warehouse_{step}_seconds"] = seconds
    return base_settings.model_copy(update=update)


@pytest.fixture(scope="session")
async def engine(base_settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(base_settings)
    yield eng
    await dispose(eng)


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """A clean database for the test."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return engine


def test_server_path() -> str:
    return str(Path(sys.executable).parent / "temporal-test-server")


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (about 0.1 s): it only skips time while no
    task is pending anywhere, so work left by another test would stop its clock."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=DATA_CONVERTER)
    await ensure_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A real Temporal dev server, for what the time-skipping one lacks (schedules,
    visibility queries) and for worker processes of their own."""
    server = TemporalDevServer(port=free_port(), db_file=tmp_path_factory.mktemp("temporal") / "t.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def on_server(settings: Settings, dev_server: TemporalDevServer) -> Settings:
    return settings.model_copy(update={"temporal_address": dev_server.address})


@pytest.fixture
async def client(on_server: Settings) -> Client:
    return await connect(on_server, attempts=20)


@pytest.fixture
async def worker(
    temporal_env: WorkflowEnvironment, db: AsyncEngine, settings: Settings
) -> AsyncIterator[RunningWorker]:
    async with start_worker(temporal_env.client, db, settings) as running:
        yield running


@pytest.fixture
async def app(
    settings: Settings, db: AsyncEngine, temporal_env: WorkflowEnvironment, worker: RunningWorker
) -> AsyncIterator[Any]:
    """The API app in its lifespan, a worker behind it (for tests that sign in to the
    dashboard, or bring their own client)."""
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(
    temporal_env: WorkflowEnvironment,
    db: AsyncEngine,
    settings: Settings,
    worker: RunningWorker,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with an admin key, and a worker behind it: a workflow task nobody polls
    would stop the time-skipping server's clock."""
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)
    async with api_client(app, db, settings) as client:
        yield client


# Browser tests: Debian's chromium under Playwright, offline (tests/browser.py).

_PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
        None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows if the test failed."""
    report = yield
    item.stash.setdefault(_PHASE_REPORTS, {})[report.when] = report
    return report


def _test_failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_PHASE_REPORTS, {})
    return any(r.failed for when, r in reports.items() if when in ("setup", "call"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless /usr/bin/chromium for the session: Playwright's driver starts in about
    0.3 s, the browser in 0.2 s (0.45 s cold). Skipped where it is missing, except under CI
    (env CI set), where a missing browser fails."""
    from tests.browser import CHROMIUM, FLAGS, chromium_available

    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        started = time.monotonic()
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        browser_launch_seconds = time.monotonic() - started
        print(f"chromium {browser.version} launched in {browser_launch_seconds:.2f} s", file=sys.stderr)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(chromium: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Page]:
    """A fresh context and page. Requests to any host but loopback are aborted, and fail the
    test at teardown with their URLs. Saves tmp_path/final.png (full page) always, and
    tmp_path/failure.png when the test failed."""
    from tests.browser import OffsiteGuard

    context = await chromium.new_context(viewport={"width": 1280, "height": 800},
                                         service_workers="block")
    guard = OffsiteGuard()
    await guard.install(context)
    try:
        pg = await context.new_page()
        yield pg
        shots = ["failure.png", "final.png"] if _test_failed(request.node) else ["final.png"]
        for name in shots:
            try:
                await pg.screenshot(path=tmp_path / name, full_page=True, timeout=10_000)
                print(f"screenshot: {tmp_path / name}", file=sys.stderr)
            except Exception as exc:  # a closed or crashed page: report the test, not this
                print(f"no screenshot {name}: {exc}", file=sys.stderr)
    finally:
        await context.close()
    if guard.blocked:
        pytest.fail("the page requested non-loopback URLs (blocked):\n  " + "\n  ".join(guard.blocked),
                    pytrace=False)
