"""channel intake: the channel registry, every received payload, products' list price;
dashboard sessions kept server-side; indexes for the KPIs' period filters

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("list_price", sa.Numeric(14, 4)))
    op.create_table(
        "channels",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary()),
        sa.Column("validation", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("accounts", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("default_region", sa.Text(), server_default="US", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint(
            "kind IN ('native', 'shopify', 'woocommerce', 'marketplace', 'edi850')",
            name="ck_channels_kind"),
        sa.PrimaryKeyConstraint("name", name="pk_channels"),
    )
    op.create_table(
        "intakes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("content_type", sa.Text()),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("body_hash", sa.Text()),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Text()),
        sa.Column("deliveries", sa.Integer(), server_default="1", nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("message", sa.Text()),
        sa.Column("field", sa.Text()),
        sa.Column("transient", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("order_number", sa.Text()),
        sa.Column("order_id", UUID(as_uuid=True)),
        sa.Column("order_value", sa.Numeric(28, 4)),
        sa.Column("customer_tier", sa.Text()),
        sa.CheckConstraint("state IN ('accepted', 'rejected', 'dead')", name="ck_intakes_state"),
        sa.CheckConstraint("signature IN ('valid', 'invalid', 'missing', 'key')",
                           name="ck_intakes_signature"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_intakes_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_intakes"),
    )
    op.create_index("uq_intakes_channel_delivery_id", "intakes", ["channel", "delivery_id"],
                    unique=True, postgresql_where=sa.text("delivery_id IS NOT NULL"))
    op.create_index("ix_intakes_channel_received_at", "intakes", ["channel", "received_at"])
    op.create_index("ix_intakes_open", "intakes", ["state", "reason"],
                    postgresql_where=sa.text("state <> 'accepted'"))
    op.create_index("ix_intakes_retry", "intakes", ["next_attempt_at"],
                    postgresql_where=sa.text("state = 'dead' AND transient"))


    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"],
                                name="fk_dashboard_sessions_key_id_api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_sessions"),
    )
    op.create_index("ix_dashboard_sessions_key_id", "dashboard_sessions", ["key_id"])
    # The KPIs' period filters on insert-only or never-updated columns.
    op.create_index("ix_line_events_kind_at", "line_events", ["kind", "at"])
    op.create_index("ix_order_lines_created_at", "order_lines", ["created_at"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    op.drop_index("ix_order_lines_created_at", "order_lines")
    op.drop_index("ix_line_events_kind_at", "line_events")
    op.drop_table("intakes")
    op.drop_table("channels")
    op.drop_column("products", "list_price")
