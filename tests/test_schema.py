"""The schema the migrations build: the one the models describe, with no index that a
hot path pays for and no query needs."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backorders.models import Base
from backorders.services import dispatch
from backorders.settings import Settings


def test_the_migrations_build_exactly_the_schema_the_models_describe(database_url):
    engine = sa.create_engine(Settings(_env_file=None, database_url=database_url).database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


async def test_no_index_repeats_the_leading_columns_of_another(db):
    """Every index is written on every insert and every non-HOT update: one whose
    columns lead another on the same rows serves no lookup the other cannot."""
    async with db.connect() as conn:
        redundant = (await conn.execute(sa.text(
            """
            SELECT a.indexrelid::regclass AS index, b.indexrelid::regclass AS covered_by
            FROM pg_index a
            JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
            JOIN pg_class t ON t.oid = a.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
            WHERE NOT a.indisunique
              AND a.indexprs IS NULL AND b.indexprs IS NULL
              AND a.indpred IS NOT DISTINCT FROM b.indpred
              AND a.indnkeyatts <= b.indnkeyatts
              AND (a.indkey::int2[])[0:a.indnkeyatts - 1]
                  = (b.indkey::int2[])[0:a.indnkeyatts - 1]
              -- and the same operator classes: text_pattern_ops serves other lookups
              AND (a.indclass::oid[])[0:a.indnkeyatts - 1]
                  = (b.indclass::oid[])[0:a.indnkeyatts - 1]
            """
        ))).all()
    assert redundant == []


async def test_each_dispatch_step_is_a_hot_update_of_the_allocation(db):
    """Picking, packing, labelling and shipping change an allocation's status for every
    unit shipped. With no index on what a step changes, PostgreSQL updates the row in
    place (HOT) and writes no index entry at all."""
    line_id, order_id, allocation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    setup = [
        "INSERT INTO customers (id) VALUES ('c-hot')",
        "INSERT INTO products (sku) VALUES ('HOT-1')",
        """INSERT INTO orders (id, channel, order_number, placed_at, customer_id,
                               customer_tier, order_value, request_hash)
           VALUES (:order_id, 'web', 'HOT-1', now(), 'c-hot', 'standard', 5, 'h')""",
        """INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
               fulfillable_quantity, initial_backordered, waiting_quantity, status,
               workflow_id, placed_at, tier_rank, order_value, customer_id)
           VALUES (:line_id, :order_id, 1, 'HOT-1', 1, 5, 1, 0, 0, 'allocated', 'w',
                   now(), 3, 5, 'c-hot')""",
        """INSERT INTO allocations (id, line_id, order_id, sku, quantity, source, status)
           VALUES (:allocation_id, :line_id, :order_id, 'HOT-1', 1, 'stock', 'allocated')""",
    ]
    ids = {"line_id": line_id, "order_id": order_id, "allocation_id": allocation_id}
    async with db.begin() as conn:
        for statement in setup:
            await conn.execute(sa.text(statement), ids)
    steps = ["picking", "packed", "awaiting_shipment"]
    async with db.begin() as conn:
        for step in steps:
            await conn.execute(dispatch._ADVANCE, {
                "id": allocation_id, "status": step, "line_id": line_id,
                "line_status": step, "message": step, "data": "{}"})
        hot = (await conn.execute(sa.text(
            "SELECT pg_stat_get_xact_tuples_updated('allocations'::regclass), "
            "pg_stat_get_xact_tuples_hot_updated('allocations'::regclass)"))).one()
    assert tuple(hot) == (len(steps), len(steps))
