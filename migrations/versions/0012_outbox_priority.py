"""outbox priority: the relays take pending hand-offs highest customer tier first, then
oldest, so a burst left to them starts platinum customers' lines before the rest

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("delivered_at IS NULL AND dead_at IS NULL")


def upgrade() -> None:
    op.add_column("outbox", sa.Column("priority", sa.SmallInteger(), server_default="0",
                                      nullable=False))
    # Beside ix_outbox_pending, which still serves the scan for due rows while many
    # wait out a backoff (Temporal down).
    op.create_index("ix_outbox_pending_priority", "outbox", ["priority", "id"],
                    postgresql_where=_PENDING)


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_priority", table_name="outbox", postgresql_where=_PENDING)
    op.drop_column("outbox", "priority")
