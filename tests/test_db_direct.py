"""The direct (driver-level) path the hot statements take: a pipelined transaction is
still all or nothing, and connections that died with the server are replaced."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa

from backorders.db import (
    DIRECT_APPLICATION_NAME,
    Direct,
    create_engine,
    direct_one,
    direct_transaction,
    dispose,
    execute,
)
from tests.support import scalar

INSERT = sa.text("INSERT INTO customers (id) VALUES (:id)")


async def test_a_failure_late_in_a_pipelined_transaction_undoes_what_went_before(db):
    async def work(conn: Direct) -> None:
        await execute(conn, INSERT, {"id": "first"})  # only queued: it travels with the next
        await execute(conn, sa.text("SELECT 1 / 0"))

    with pytest.raises(psycopg.errors.DivisionByZero):
        await direct_transaction(db, work)
    assert await scalar(db, "SELECT count(*) FROM customers") == 0
    # The connection went back to the pool usable, and the next transaction commits.
    await direct_transaction(db, lambda conn: execute(conn, INSERT, {"id": "second"}))
    assert await scalar(db, "SELECT id FROM customers") == "second"


async def test_connections_killed_under_the_pool_are_replaced_and_the_work_runs_once(
    base_settings, db
):
    engine = create_engine(base_settings)
    try:
        # Ten connections in the pool, more than a unit of work's eight attempts: each
        # would meet a dead one unless the pool is checked at the first.
        await asyncio.gather(*(direct_one(engine, sa.text("SELECT pg_sleep(0.2)"))
                               for _ in range(10)))
        await direct_transaction(engine, lambda conn: execute(conn, INSERT, {"id": "before"}))
        with psycopg.connect(base_settings.libpq_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s", (DIRECT_APPLICATION_NAME,)).fetchone()
        assert killed is not None and killed[0] >= 10

        await direct_transaction(engine, lambda conn: execute(conn, INSERT, {"id": "after"}))
        row = await direct_one(engine, sa.text("SELECT count(*) AS n FROM customers"))
        assert row.n == 2
    finally:
        await dispose(engine)
