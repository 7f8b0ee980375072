"""staff alert relay index: the relay's once-a-second look for unsent staff alerts reads
only those, not every notification ever recorded

Every worker asks each `outbox_poll_seconds` for pending staff alerts in id order. With
no index to serve it, PostgreSQL walked the whole notifications table each time, a cost
that grew with every message a merchant had ever sent, times the number of workers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_STAFF = "audience = 'staff' AND status = 'pending' AND line_id IS NULL"


def upgrade() -> None:
    op.create_index("ix_notifications_staff_pending", "notifications", ["id"],
                    postgresql_where=sa.text(PENDING_STAFF))


def downgrade() -> None:
    op.drop_index("ix_notifications_staff_pending", table_name="notifications")
