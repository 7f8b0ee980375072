"""supply: suppliers, purchase orders, expected dates on waiting lines, refunds,
backorder_until

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("products", sa.Column("backorder_until", sa.Date(), nullable=True))
    op.add_column("orders", sa.Column("ship_complete", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.add_column("orders", sa.Column("released_at", TZ, nullable=True))
    op.add_column("order_lines", sa.Column("expected_date", sa.Date(), nullable=True))
    op.add_column("order_lines", sa.Column("no_supply", sa.Boolean(),
                                           server_default=sa.false(), nullable=False))
    op.create_table(
        "suppliers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppliers"),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("po_number", sa.Text(), nullable=False),
        sa.Column("supplier_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('open', 'cancelled')", name="ck_purchase_orders_status"),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"],
                                name="fk_purchase_orders_supplier_id_suppliers"),
        sa.PrimaryKeyConstraint("po_number", name="pk_purchase_orders"),
    )
    op.create_table(
        "purchase_order_lines",
        sa.Column("po_number", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expected_at", sa.Date(), nullable=False),
        sa.Column("promised_at", sa.Date(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("quantity >= 0", name="ck_purchase_order_lines_quantity"),
        sa.CheckConstraint("received_quantity >= 0", name="ck_purchase_order_lines_received"),
        sa.ForeignKeyConstraint(["po_number"], ["purchase_orders.po_number"],
                                name="fk_purchase_order_lines_po_number_purchase_orders"),
        sa.ForeignKeyConstraint(["sku"], ["products.sku"],
                                name="fk_purchase_order_lines_sku_products"),
        sa.PrimaryKeyConstraint("po_number", "sku", name="pk_purchase_order_lines"),
    )
    op.create_index("ix_purchase_order_lines_open", "purchase_order_lines",
                    ["sku", "expected_at"],
                    postgresql_where=sa.text("NOT cancelled AND received_quantity < quantity"))
    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("line_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(28, 4), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["order_lines.id"],
                                name="fk_refunds_line_id_order_lines"),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
    )


def downgrade() -> None:
    op.drop_table("refunds")
    op.drop_table("purchase_order_lines")
    op.drop_table("purchase_orders")
    op.drop_table("suppliers")
    op.drop_column("order_lines", "no_supply")
    op.drop_column("order_lines", "expected_date")
    op.drop_column("orders", "released_at")
    op.drop_column("orders", "ship_complete")
    op.drop_column("products", "backorder_until")
