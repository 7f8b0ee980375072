"""Engine and transactions. Every write runs in `transaction()`, which retries the whole
unit of work when PostgreSQL aborts it for a deadlock or serialisation conflict."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg.errors
import sqlalchemy as sa
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


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping: it costs a round trip per checkout. A connection that died with
        # the server fails its statement, is invalidated, and the unit of work is retried
        # (activities) or answered 503 (API).
        connect_args={
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
            "connect_timeout": 5,
        },
    )


def _is_retryable(exc: BaseException) -> bool:
    """A lock conflict, or a pooled connection found dead (the server restarted since it
    was last used). Every unit of work is idempotent (keys, absolute counts, guarded
    state changes), so running it again is safe even if a commit's answer was lost."""
    return isinstance(exc, DBAPIError) and (
        isinstance(exc.orig, _RETRYABLE) or exc.connection_invalidated
    )


async def transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction, retrying it from the start on lock conflicts."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_is_retryable),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.01, max=0.5),
        reraise=True,
    ):
        with attempt:
            async with engine.begin() as conn:
                return await work(conn)
    raise AssertionError("unreachable")  # pragma: no cover


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
