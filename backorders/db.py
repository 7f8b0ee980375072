"""Engine and transactions. Every write runs in `transaction()`, which retries the whole
unit of work when PostgreSQL aborts it for a deadlock or serialisation conflict.

The few statements every shipped unit runs (the dispatch ledger, the warehouse, the
messages) go straight to psycopg through `direct()`: a pool of the same database's
connections beside the engine's. Measured on the worker, SQLAlchemy's execution layer
cost about four times the driver's CPU per statement, and a pipelined transaction sends
BEGIN with its first statement and COMMIT with its last."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from backorders.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def create_engine(settings: Settings, role: str | None = None) -> AsyncEngine:
    """The engine (and, on first use, the direct pool) for an "api" or "worker" process,
    sized by that role's pool setting; without a role, `DB_POOL_SIZE`."""
    if role is not None:
        settings = settings.model_copy(update={"db_pool_size": settings.pool_size(role)})
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping: it costs a round trip per checkout. A connection that died with
        # the server fails its statement, is invalidated, and the unit of work is retried
        # (activities) or answered 503 (API).
        connect_args={
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "connect_timeout": 5,
            **settings.database_tls,
        },
    )
    _SETTINGS[engine] = settings
    return engine


def _is_retryable(exc: BaseException) -> bool:
    """A lock conflict, or a pooled connection found dead (the server restarted since it
    was last used). Every unit of work is idempotent (keys, absolute counts, guarded
    state changes), so running it again is safe even if a commit's answer was lost."""
    if isinstance(exc, (*_RETRYABLE, ConnectionLost)):
        return True
    return isinstance(exc, DBAPIError) and (
        isinstance(exc.orig, _RETRYABLE) or exc.connection_invalidated
    )


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(_is_retryable),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.01, max=0.5),
        reraise=True,
    )


async def transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction, retrying it from the start on lock conflicts."""
    async for attempt in _retrying():
        with attempt:
            async with engine.begin() as conn:
                return await work(conn)
    raise AssertionError("unreachable")  # pragma: no cover


# --- direct driver access for the hot paths -----------------------------------------------

class ConnectionLost(psycopg.OperationalError):
    """A direct connection died under a statement (the server restarted since it was
    last used); the pool throws it away and the unit of work runs again."""


Direct = psycopg.AsyncConnection[Any]
"""An autocommit psycopg connection whose rows are named tuples."""

DIRECT_APPLICATION_NAME = "backorders-direct"
"""How the direct pool's connections show in pg_stat_activity."""

_SETTINGS: weakref.WeakKeyDictionary[AsyncEngine, Settings] = weakref.WeakKeyDictionary()
_DIRECT: weakref.WeakKeyDictionary[AsyncEngine, AsyncConnectionPool] = weakref.WeakKeyDictionary()


async def direct(engine: AsyncEngine) -> AsyncConnectionPool:
    """The driver-level pool beside `engine`, opened on first use and closed by
    `dispose()`. Connections are in autocommit: a unit of work that needs a transaction
    runs in `direct_transaction()`."""
    pool = _DIRECT.get(engine)
    if pool is None:
        settings = _SETTINGS.get(engine)
        if settings is None:
            raise ValueError("direct() needs an engine made by db.create_engine")
        pool = _DIRECT[engine] = AsyncConnectionPool(
            settings.libpq_url,
            min_size=1,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            kwargs={"autocommit": True, "row_factory": namedtuple_row, "connect_timeout": 5,
                    "application_name": DIRECT_APPLICATION_NAME,
                    "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
                    **settings.database_tls},
            # A connection that died with the server is found when its statement fails,
            # then thrown away (and the unit of work retried), as with the engine.
            check=None,
            open=False,
            name="direct",
        )
    if pool.closed:
        await pool.open()  # safe to repeat: a second caller may get here first
    return pool


@asynccontextmanager
async def _connection(pool: AsyncConnectionPool) -> AsyncIterator[Direct]:
    """A pooled connection. One that dies under its statement means the server restarted,
    so the pool's idle connections are most likely dead too: check them all now (the dead
    are replaced) rather than fail once on each, and raise `ConnectionLost` for the unit
    of work to run again."""
    async with pool.connection() as conn:
        try:
            yield conn
        except Exception as exc:
            if conn.broken:
                await pool.check()
                raise ConnectionLost(str(exc)) from exc
            raise


async def direct_once(engine: AsyncEngine, work: Callable[[Direct], Awaitable[T]]) -> T:
    """One statement (or a few reads) outside a transaction, retried on a dead connection."""
    pool = await direct(engine)
    async for attempt in _retrying():
        with attempt:
            async with _connection(pool) as conn:
                return await work(conn)
    raise AssertionError("unreachable")  # pragma: no cover


async def direct_transaction(engine: AsyncEngine, work: Callable[[Direct], Awaitable[T]]) -> T:
    """`transaction()` for the hot paths, pipelined: BEGIN travels with the first
    statement and COMMIT with the last, so a lock is held for the fewest round trips.
    A read inside `work` waits for its answer as usual."""
    pool = await direct(engine)
    async for attempt in _retrying():
        with attempt:
            async with _connection(pool) as conn:
                try:
                    async with conn.pipeline():
                        await conn.execute("BEGIN")
                        result = await work(conn)
                        await conn.execute("COMMIT")
                except Exception:
                    if not conn.broken:
                        await conn.rollback()  # a cancelled one is left to the pool
                    raise
                return result
    raise AssertionError("unreachable")  # pragma: no cover


_DIALECT = psycopg_dialect()
_PYFORMAT: dict[str, str] = {}


def _pyformat(stmt: sa.TextClause) -> str:
    """The statement as psycopg takes it (`:name` becomes `%(name)s`), compiled once, so
    the same `sa.text` runs on either kind of connection."""
    sql = _PYFORMAT.get(stmt.text)
    if sql is None:
        sql = _PYFORMAT[stmt.text] = str(stmt.compile(dialect=_DIALECT))
    return sql


async def query(conn: AsyncConnection | Direct, stmt: sa.TextClause,
                params: Mapping[str, Any] | None = None) -> list[Any]:
    """The rows of `stmt`, on an engine connection or a direct one alike."""
    if isinstance(conn, AsyncConnection):
        return list((await conn.execute(stmt, params or {})).all())
    return await (await conn.execute(_pyformat(stmt), params)).fetchall()


async def execute(conn: AsyncConnection | Direct, stmt: sa.TextClause,
                  params: Mapping[str, Any] | None = None) -> None:
    """Run `stmt` for its effect. In a direct transaction it is only queued: it travels
    with the next statement whose answer is awaited, or with COMMIT."""
    if isinstance(conn, AsyncConnection):
        await conn.execute(stmt, params or {})
    else:
        await conn.execute(_pyformat(stmt), params)


async def direct_one(engine: AsyncEngine, stmt: sa.TextClause,
                     params: Mapping[str, Any] | None = None) -> Any | None:
    """The first row of one statement, run on a direct connection, or None."""
    async def run(conn: Direct) -> Any | None:
        rows = await query(conn, stmt, params)
        return rows[0] if rows else None

    return await direct_once(engine, run)


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's pool and the direct pool beside it."""
    pool = _DIRECT.pop(engine, None)
    if pool is not None:
        await pool.close()
    await engine.dispose()


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool without BEGIN/COMMIT: for reads and single-statement writes, where
    a transaction would only add two round trips. Made once per engine: building the
    option engine on every call cost more than the query it served."""
    shadow = _AUTOCOMMIT.get(engine)
    if shadow is None:
        shadow = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return shadow


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
