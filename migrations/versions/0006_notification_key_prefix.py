"""notification keys: prefix lookups use an index whatever the database's collation

A line event's staff messages are keyed `<event key>:<n>`; the idempotency check looks
them up by prefix, which a plain btree index serves only under the C collation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_key_prefix", "notifications", ["idempotency_key"],
                    postgresql_ops={"idempotency_key": "text_pattern_ops"})


def downgrade() -> None:
    op.drop_index("ix_notifications_key_prefix", table_name="notifications")
