"""replenishment_plans: each SKU's replenishment suggestion per horizon with the hash of
its inputs, so `GET /replenishment` recomputes only what changed; purchase order lines
indexed by SKU (a SKU's latest supplier was a scan of every line, once per SKU)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replenishment_plans",
        sa.Column("sku", sa.Text(),
                  sa.ForeignKey("products.sku", name="fk_replenishment_plans_sku"),
                  primary_key=True),
        sa.Column("horizon_weeks", sa.Integer(), primary_key=True),
        sa.Column("inputs_hash", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("supplier_id", sa.Text(), nullable=True),
        sa.Column("suggested_quantity", sa.Integer(), nullable=False),
        sa.Column("predicted_backorder_units", sa.Float(), nullable=False),
        sa.Column("order_by", sa.Date(), nullable=True),
        sa.Column("item", JSONB(), nullable=False),
    )
    op.create_index("ix_replenishment_plans_rank", "replenishment_plans",
                    ["horizon_weeks", sa.text("predicted_backorder_units DESC")])
    op.create_index("ix_purchase_order_lines_sku", "purchase_order_lines", ["sku"])


def downgrade() -> None:
    op.drop_index("ix_purchase_order_lines_sku", table_name="purchase_order_lines")
    op.drop_index("ix_replenishment_plans_rank", table_name="replenishment_plans")
    op.drop_table("replenishment_plans")
