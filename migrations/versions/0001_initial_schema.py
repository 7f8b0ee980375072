"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 18:30:57.925771
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('tier', sa.Text(), server_default='standard', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('products',
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('backorder_allowed', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('backorder_max_quantity', sa.Integer(), nullable=True),
    sa.Column('discontinued', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('allocation_policy', sa.Text(), server_default='fifo', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("allocation_policy IN ('fifo', 'priority')", name=op.f('ck_products_policy')),
    sa.CheckConstraint('backorder_max_quantity IS NULL OR backorder_max_quantity >= 0', name=op.f('ck_products_max_quantity')),
    sa.PrimaryKeyConstraint('sku', name=op.f('pk_products'))
    )
    op.create_table('sim_warehouse_tasks',
    sa.Column('allocation_id', sa.UUID(), nullable=False),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('packed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('handed_over_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tracking_number', sa.Text(), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handovers', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('allocation_id', name=op.f('pk_sim_warehouse_tasks'))
    )
    op.create_table('inventory_movements',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('on_hand_after', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['sku'], ['products.sku'], name=op.f('fk_inventory_movements_sku_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventory_movements'))
    )
    op.create_index('ix_inventory_movements_sku', 'inventory_movements', ['sku', 'id'], unique=False)
    op.create_table('orders',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('order_number', sa.Text(), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('customer_tier', sa.Text(), nullable=False),
    sa.Column('customer_email', sa.Text(), nullable=True),
    sa.Column('customer_phone', sa.Text(), nullable=True),
    sa.Column('order_value', sa.Numeric(precision=28, scale=4), nullable=False),
    sa.Column('request_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_orders_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('channel', 'order_number', name='uq_orders_channel_order_number')
    )
    op.create_index('ix_orders_customer_id', 'orders', ['customer_id'], unique=False)
    op.create_table('receipts',
    sa.Column('receipt_id', sa.Text(), nullable=False),
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('purchase_order', sa.Text(), nullable=True),
    sa.Column('request_hash', sa.Text(), nullable=False),
    sa.Column('allocated_quantity', sa.Integer(), server_default='0', nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_receipts_quantity_positive')),
    sa.ForeignKeyConstraint(['sku'], ['products.sku'], name=op.f('fk_receipts_sku_products')),
    sa.PrimaryKeyConstraint('receipt_id', name=op.f('pk_receipts'))
    )
    op.create_table('stock',
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('on_hand', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reserved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('backordered', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('backordered >= 0', name=op.f('ck_stock_backordered_not_negative')),
    sa.CheckConstraint('on_hand >= 0', name=op.f('ck_stock_on_hand_not_negative')),
    sa.CheckConstraint('reserved <= on_hand', name=op.f('ck_stock_reserved_within_on_hand')),
    sa.CheckConstraint('reserved >= 0', name=op.f('ck_stock_reserved_not_negative')),
    sa.ForeignKeyConstraint(['sku'], ['products.sku'], name=op.f('fk_stock_sku_products')),
    sa.PrimaryKeyConstraint('sku', name=op.f('pk_stock'))
    )
    op.create_table('order_lines',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('order_id', sa.UUID(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('fulfillable_quantity', sa.Integer(), nullable=False),
    sa.Column('initial_backordered', sa.Integer(), nullable=False),
    sa.Column('waiting_quantity', sa.Integer(), nullable=False),
    sa.Column('shipped_quantity', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cancelled_quantity', sa.Integer(), server_default='0', nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('workflow_id', sa.Text(), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tier_rank', sa.SmallInteger(), nullable=False),
    sa.Column('order_value', sa.Numeric(precision=28, scale=4), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('cancelled_quantity >= 0', name=op.f('ck_order_lines_cancelled_not_negative')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_lines_quantity_positive')),
    sa.CheckConstraint('shipped_quantity >= 0', name=op.f('ck_order_lines_shipped_not_negative')),
    sa.CheckConstraint('waiting_quantity + shipped_quantity + cancelled_quantity <= quantity', name=op.f('ck_order_lines_quantities_within_line')),
    sa.CheckConstraint('waiting_quantity >= 0', name=op.f('ck_order_lines_waiting_not_negative')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders')),
    sa.ForeignKeyConstraint(['sku'], ['products.sku'], name=op.f('fk_order_lines_sku_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('order_id', 'line_no', name='uq_order_lines_order_line_no'),
    sa.UniqueConstraint('seq', name=op.f('uq_order_lines_seq'))
    )
    op.create_index('ix_order_lines_customer_id', 'order_lines', ['customer_id'], unique=False)
    op.create_index('ix_order_lines_fifo_queue', 'order_lines', ['sku', 'placed_at', 'seq'], unique=False, postgresql_where=sa.text('waiting_quantity > 0'))
    op.create_index('ix_order_lines_order_id', 'order_lines', ['order_id'], unique=False)
    op.create_index('ix_order_lines_priority_queue', 'order_lines', ['sku', 'tier_rank', sa.literal_column('order_value DESC'), 'placed_at', 'seq'], unique=False, postgresql_where=sa.text('waiting_quantity > 0'))
    op.create_index('ix_order_lines_status', 'order_lines', ['status'], unique=False)
    op.create_table('allocations',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('line_id', sa.UUID(), nullable=False),
    sa.Column('order_id', sa.UUID(), nullable=False),
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('receipt_id', sa.Text(), nullable=True),
    sa.Column('queue_position', sa.Integer(), nullable=True),
    sa.Column('status', sa.Text(), server_default='allocated', nullable=False),
    sa.Column('tracking_number', sa.Text(), nullable=True),
    sa.Column('dispatch_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('allocated','picking','packed','awaiting_shipment','dispatched','cancelled')", name=op.f('ck_allocations_status')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_allocations_quantity_positive')),
    sa.ForeignKeyConstraint(['line_id'], ['order_lines.id'], name=op.f('fk_allocations_line_id_order_lines')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_allocations_order_id_orders')),
    sa.ForeignKeyConstraint(['sku'], ['products.sku'], name=op.f('fk_allocations_sku_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations'))
    )
    op.create_index('ix_allocations_line_id', 'allocations', ['line_id'], unique=False)
    op.create_index('ix_allocations_receipt_id', 'allocations', ['receipt_id'], unique=False)
    op.create_index('ix_allocations_sku_status', 'allocations', ['sku', 'status'], unique=False)
    op.create_table('line_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('line_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['order_lines.id'], name=op.f('fk_line_events_line_id_order_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_events'))
    )
    op.create_index('ix_line_events_line_id', 'line_events', ['line_id', 'id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('line_id', sa.UUID(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['line_id'], ['order_lines.id'], name=op.f('fk_outbox_line_id_order_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_index('ix_outbox_line_id', 'outbox', ['line_id'], unique=False)
    op.create_index('ix_outbox_pending', 'outbox', ['available_at', 'id'], unique=False, postgresql_where=sa.text('delivered_at IS NULL AND dead_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_pending', table_name='outbox', postgresql_where=sa.text('delivered_at IS NULL AND dead_at IS NULL'))
    op.drop_index('ix_outbox_line_id', table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_line_events_line_id', table_name='line_events')
    op.drop_table('line_events')
    op.drop_index('ix_allocations_sku_status', table_name='allocations')
    op.drop_index('ix_allocations_receipt_id', table_name='allocations')
    op.drop_index('ix_allocations_line_id', table_name='allocations')
    op.drop_table('allocations')
    op.drop_index('ix_order_lines_status', table_name='order_lines')
    op.drop_index('ix_order_lines_priority_queue', table_name='order_lines', postgresql_where=sa.text('waiting_quantity > 0'))
    op.drop_index('ix_order_lines_order_id', table_name='order_lines')
    op.drop_index('ix_order_lines_fifo_queue', table_name='order_lines', postgresql_where=sa.text('waiting_quantity > 0'))
    op.drop_index('ix_order_lines_customer_id', table_name='order_lines')
    op.drop_table('order_lines')
    op.drop_table('stock')
    op.drop_table('receipts')
    op.drop_index('ix_orders_customer_id', table_name='orders')
    op.drop_table('orders')
    op.drop_index('ix_inventory_movements_sku', table_name='inventory_movements')
    op.drop_table('inventory_movements')
    op.drop_table('sim_warehouse_tasks')
    op.drop_table('products')
    op.drop_table('customers')
