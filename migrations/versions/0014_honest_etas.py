"""honest etas: each waiting line's likely and latest dates, from its covering purchase
order's supplier delay history; indexes for reading that history per supplier

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order_lines", sa.Column("likely_date", sa.Date(), nullable=True))
    op.add_column("order_lines", sa.Column("latest_date", sa.Date(), nullable=True))
    # Lines already waiting keep their expected date as likely and latest until their
    # SKU is next re-dated (no supplier history was read for them yet).
    op.execute("UPDATE order_lines SET likely_date = expected_date, latest_date = expected_date "
               "WHERE waiting_quantity > 0 AND expected_date IS NOT NULL")
    # A supplier's delay samples (`services.supplier_delays`), read by every expected-date
    # refresh: its purchase orders, then their receipts.
    op.create_index("ix_purchase_orders_supplier_id", "purchase_orders", ["supplier_id"])
    op.create_index("ix_receipts_purchase_order", "receipts", ["purchase_order", "sku"])


def downgrade() -> None:
    op.drop_index("ix_receipts_purchase_order", table_name="receipts")
    op.drop_index("ix_purchase_orders_supplier_id", table_name="purchase_orders")
    op.drop_column("order_lines", "latest_date")
    op.drop_column("order_lines", "likely_date")
