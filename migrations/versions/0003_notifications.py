"""notifications: customer preferences, the notification store, staff alert state,
low-stock thresholds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("products", sa.Column("low_stock_threshold", sa.Integer(), nullable=True))
    op.add_column("order_lines", sa.Column("promised_date", sa.Date(), nullable=True))
    op.create_table(
        "customer_preferences",
        sa.Column("customer_id", sa.Text(), sa.ForeignKey(
            "customers.id", name="fk_customer_preferences_customer_id_customers"),
            primary_key=True),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{email}'"),
                  nullable=False),
        sa.Column("digest", sa.Text(), server_default="instant", nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("opted_out", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column("segments", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column("push_token", sa.Text(), nullable=True),
        sa.Column("app_active_until", TZ, nullable=True),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("digest IN ('instant', 'daily')",
                           name="ck_customer_preferences_digest"),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_preferences"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("line_id", sa.Uuid(), nullable=True),
        sa.Column("sku", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("channels", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("facts", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempt_log", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("digest_id", sa.BigInteger(), nullable=True),
        sa.Column("event_at", TZ, nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("send_after", TZ, nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("failed_at", TZ, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'queued', 'sent', 'suppressed', 'failed', 'digested')",
            name="ck_notifications_status"),
        sa.CheckConstraint("audience IN ('customer', 'staff')", name="ck_notifications_audience"),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index("ix_notifications_customer", "notifications", ["customer_id", "created_at"])
    op.create_index("ix_notifications_order", "notifications", ["order_id"])
    op.create_index("ix_notifications_due", "notifications", ["send_after"],
                    postgresql_where=sa.text("status = 'queued'"))
    op.create_table(
        "staff_alert_state",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("fired_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("sku", "kind", name="pk_staff_alert_state"),
    )


def downgrade() -> None:
    op.drop_table("staff_alert_state")
    op.drop_table("notifications")
    op.drop_table("customer_preferences")
    op.drop_column("order_lines", "promised_date")
    op.drop_column("products", "low_stock_threshold")
