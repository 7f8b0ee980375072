"""lean hot paths: no per-row checks or index entries that nothing reads

A receipt against 10,000 waiting lines writes 10,000 allocations, outbox messages and
timeline entries in one statement, and every unit shipped moves its allocation through
four more statuses. What each of those rows paid for, and no longer does:

- `allocations.order_id` and `allocations.sku` are copies of the allocated line's own,
  written from the line row in the same statement. The line's foreign key (kept) and the
  line's own keys to its order and product already guarantee both exist; two more
  foreign keys only re-checked that, one trigger per row each.
- `outbox.line_id`: the outbox is a transport, written with the change it announces.
  A message for a line that does not exist fails delivery and is dead-lettered, where
  ops see it. Its foreign key, and the index that served only that key, go.
- `ix_order_lines_order_id` duplicated the unique (order_id, line_no) index, which
  serves every lookup by order just as well; every non-HOT line update wrote both.
- `ix_allocations_sku_status` served no query. Because it covered `status`, every step
  (picking, packed, awaiting_shipment, dispatched) was a non-HOT update that wrote a new
  entry into each of the table's indexes; without it a step is a HOT update.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_allocations_order_id_orders", "allocations", type_="foreignkey")
    op.drop_constraint("fk_allocations_sku_products", "allocations", type_="foreignkey")
    op.drop_constraint("fk_outbox_line_id_order_lines", "outbox", type_="foreignkey")
    op.drop_index("ix_outbox_line_id", table_name="outbox")
    op.drop_index("ix_order_lines_order_id", table_name="order_lines")
    op.drop_index("ix_allocations_sku_status", table_name="allocations")


def downgrade() -> None:
    op.create_index("ix_allocations_sku_status", "allocations", ["sku", "status"])
    op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])
    op.create_index("ix_outbox_line_id", "outbox", ["line_id"])
    op.create_foreign_key("fk_outbox_line_id_order_lines", "outbox", "order_lines",
                          ["line_id"], ["id"])
    op.create_foreign_key("fk_allocations_sku_products", "allocations", "products",
                          ["sku"], ["sku"])
    op.create_foreign_key("fk_allocations_order_id_orders", "allocations", "orders",
                          ["order_id"], ["id"])
