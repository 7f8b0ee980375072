"""dated lines index: an expected-date refresh costs the supply on order, not the queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_order_lines_dated", "order_lines", ["sku"],
                    postgresql_where=sa.text("waiting_quantity > 0 AND NOT no_supply"))


def downgrade() -> None:
    op.drop_index("ix_order_lines_dated", table_name="order_lines")
