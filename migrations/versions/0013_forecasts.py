"""forecasts: each SKU's stored demand forecast; products' substitutes, usual supplier
and lead time for the replenishment suggestions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("substitutes", sa.ARRAY(sa.Text()),
                                        server_default=sa.text("'{}'"), nullable=False))
    op.add_column("products", sa.Column("supplier_id", sa.Text(),
                                        sa.ForeignKey("suppliers.id", name="fk_products_supplier_id")))
    op.add_column("products", sa.Column("lead_time_days", sa.Integer()))
    op.create_table(
        "forecasts",
        sa.Column("sku", sa.Text(), sa.ForeignKey("products.sku", name="fk_forecasts_sku"),
                  primary_key=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("first_week", sa.Date(), nullable=False),
        sa.Column("history_hash", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("history_weeks", sa.Integer(), nullable=False),
        sa.Column("backtest_mae", sa.Float()),
        sa.Column("backtest_mase", sa.Float()),
        sa.Column("error_sd", sa.Float(), nullable=False),
        sa.Column("weeks", JSONB(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
    op.drop_column("products", "lead_time_days")
    op.drop_constraint("fk_products_supplier_id", "products", type_="foreignkey")
    op.drop_column("products", "supplier_id")
    op.drop_column("products", "substitutes")
