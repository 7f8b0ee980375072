"""opt-out events: when each customer left each channel, for the opt-out rate

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opt_outs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_opt_outs_customer_id_customers"),
        sa.PrimaryKeyConstraint("id", name="pk_opt_outs"),
    )
    op.create_index("ix_opt_outs_at", "opt_outs", ["at"])
    # Opt-outs from before this table cannot be dated, so none are made up: the opt-out
    # rate counts from the day it was deployed.


def downgrade() -> None:
    op.drop_table("opt_outs")
