"""PostgreSQL schema: the system of record for products, stock, orders, the allocation
ledger and the hand-off outbox. Constraints here are the last line of defence for the
invariants (stock never negative, never more reserved than on hand, quantities add up)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _now() -> sa.TextClause:
    return sa.text("now()")


class Product(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    backorder_allowed: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    backorder_max_quantity: Mapped[int | None] = mapped_column(sa.Integer)
    discontinued: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    allocation_policy: Mapped[str] = mapped_column(sa.Text, server_default="fifo")
    # Staff hear when available stock falls below this (F16); no alert when unset.
    low_stock_threshold: Mapped[int | None] = mapped_column(sa.Integer)
    # No new backorders after this date (the line is being phased out, say).
    backorder_until: Mapped[Any | None] = mapped_column(sa.Date)
    list_price: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 4))
    # Offered instead when this SKU has no supply or is predicted short (F21).
    substitutes: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default=sa.text("'{}'"))
    # Who replenishes it, and how long they take when their receipts do not say.
    supplier_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("suppliers.id", name="fk_products_supplier_id"))
    lead_time_days: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("allocation_policy IN ('fifo', 'priority')", name="policy"),
        sa.CheckConstraint(
            "backorder_max_quantity IS NULL OR backorder_max_quantity >= 0", name="max_quantity"
        ),
    )


class Stock(Base):
    """One row per SKU; locking it serialises every change to that SKU's units."""

    __tablename__ = "stock"

    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    reserved: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    backordered: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        sa.CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
        sa.CheckConstraint("backordered >= 0", name="backordered_not_negative"),
    )


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.Text)
    phone: Mapped[str | None] = mapped_column(sa.Text)
    tier: Mapped[str] = mapped_column(sa.Text, server_default="standard")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.Text)
    order_number: Mapped[str] = mapped_column(sa.Text)
    placed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    customer_tier: Mapped[str] = mapped_column(sa.Text)
    customer_email: Mapped[str | None] = mapped_column(sa.Text)
    # Hold every line until the whole order can ship at once; released_at is when it could.
    ship_complete: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    released_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    customer_phone: Mapped[str | None] = mapped_column(sa.Text)
    order_value: Mapped[Decimal] = mapped_column(sa.Numeric(28, 4))
    request_hash: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    cancelled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("channel", "order_number", name="uq_orders_channel_order_number"),
        sa.Index("ix_orders_customer_id", "customer_id"),
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Strictly increasing arrival number: the final tie-break of every queue.
    seq: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), unique=True)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"))
    line_no: Mapped[int] = mapped_column(sa.Integer)
    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    unit_price: Mapped[Decimal] = mapped_column(sa.Numeric(14, 4))
    fulfillable_quantity: Mapped[int] = mapped_column(sa.Integer)
    initial_backordered: Mapped[int] = mapped_column(sa.Integer)
    # The date the shop promised; when it passes undelivered, customer and sales hear.
    promised_date: Mapped[Any | None] = mapped_column(sa.Date)
    # When the waiting units should arrive: the queue walked against open purchase
    # orders, plus handling time. no_supply: no open purchase order covers them.
    expected_date: Mapped[Any | None] = mapped_column(sa.Date)
    # Honest dates: the covering purchase order's supplier delay quantiles applied to its
    # promise (`domain.delays.honest_dates`); equal to expected_date without history.
    likely_date: Mapped[Any | None] = mapped_column(sa.Date)
    latest_date: Mapped[Any | None] = mapped_column(sa.Date)
    no_supply: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    waiting_quantity: Mapped[int] = mapped_column(sa.Integer)
    shipped_quantity: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    cancelled_quantity: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    status: Mapped[str] = mapped_column(sa.Text)
    workflow_id: Mapped[str] = mapped_column(sa.Text)
    # Queue keys, copied from the order so a SKU's queue is one index scan.
    placed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    tier_rank: Mapped[int] = mapped_column(sa.SmallInteger)
    order_value: Mapped[Decimal] = mapped_column(sa.Numeric(28, 4))
    customer_id: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("waiting_quantity >= 0", name="waiting_not_negative"),
        sa.CheckConstraint("shipped_quantity >= 0", name="shipped_not_negative"),
        sa.CheckConstraint("cancelled_quantity >= 0", name="cancelled_not_negative"),
        sa.CheckConstraint(
            "waiting_quantity + shipped_quantity + cancelled_quantity <= quantity",
            name="quantities_within_line",
        ),
        sa.UniqueConstraint("order_id", "line_no", name="uq_order_lines_order_line_no"),
        sa.Index(
            "ix_order_lines_fifo_queue",
            "sku",
            "placed_at",
            "seq",
            postgresql_where=sa.text("waiting_quantity > 0"),
        ),
        sa.Index(
            "ix_order_lines_priority_queue",
            "sku",
            "tier_rank",
            sa.text("order_value DESC"),
            "placed_at",
            "seq",
            postgresql_where=sa.text("waiting_quantity > 0"),
        ),
        # Waiting lines that still carry an expected date (or were never dated): what an
        # expected-date refresh must look at beyond the lines open supply covers.
        sa.Index(
            "ix_order_lines_dated",
            "sku",
            postgresql_where=sa.text("waiting_quantity > 0 AND NOT no_supply"),
        ),
        # Lookups by order use uq_order_lines_order_line_no (order_id leads it).
        sa.Index("ix_order_lines_status", "status"),
        sa.Index("ix_order_lines_customer_id", "customer_id"),
        sa.Index("ix_order_lines_created_at", "created_at"),
    )


class Allocation(Base):
    """The allocation ledger: every quantity ever reserved for a line, and how far it got."""

    __tablename__ = "allocations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    line_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("order_lines.id"))
    # Copies of the line's own, written from the line row: its foreign keys cover them
    # (migration 0008), and `tests/support.check_invariants` holds them to the line's.
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    sku: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    # stock (at intake), receipt, stock_count, release (freed by a cancellation)
    source: Mapped[str] = mapped_column(sa.Text)
    receipt_id: Mapped[str | None] = mapped_column(sa.Text)
    # The line's place in its queue when these units were handed out.
    queue_position: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.Text, server_default="allocated")
    tracking_number: Mapped[str | None] = mapped_column(sa.Text)
    dispatch_started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint(
            "status IN ('allocated','picking','packed','awaiting_shipment','dispatched','cancelled')",
            name="status",
        ),
        # No index may cover what a dispatch step changes (status, timestamps, tracking):
        # then every step is a HOT update that writes no index entry (migration 0008).
        sa.Index("ix_allocations_line_id", "line_id"),
        sa.Index("ix_allocations_receipt_id", "receipt_id"),
    )


class Receipt(Base):
    """A goods receipt from the ERP; its id is the idempotency key."""

    __tablename__ = "receipts"

    receipt_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    purchase_order: Mapped[str | None] = mapped_column(sa.Text)
    request_hash: Mapped[str] = mapped_column(sa.Text)
    allocated_quantity: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.CheckConstraint("quantity > 0", name="quantity_positive"),
                      sa.Index("ix_receipts_purchase_order", "purchase_order", "sku"))


class InventoryMovement(Base):
    """Every change to on-hand stock, so the on-hand figure can always be explained."""

    __tablename__ = "inventory_movements"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"))
    delta: Mapped[int] = mapped_column(sa.Integer)
    on_hand_after: Mapped[int] = mapped_column(sa.Integer)
    reason: Mapped[str] = mapped_column(sa.Text)  # receipt, stock_count, dispatch
    reference: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.Index("ix_inventory_movements_sku", "sku", "id"),)


class LineEvent(Base):
    """A line's timeline as the system of record saw it."""

    __tablename__ = "line_events"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    line_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("order_lines.id"))
    kind: Mapped[str] = mapped_column(sa.Text)
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.Index("ix_line_events_line_id", "line_id", "id"),
                      sa.Index("ix_line_events_kind_at", "kind", "at"))


class Outbox(Base):
    """Messages to line workflows, written in the same transaction as the change they
    announce, and delivered at least once after it commits."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)  # line.start, line.allocated, line.cancelled
    # No foreign key: a transport, written with the change it announces; a message for
    # no line fails delivery and is dead-lettered where ops see it (migration 0008).
    line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    available_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    delivered_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    dead_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # The relays take pending rows lowest first: the customer's tier rank for a line's
    # start, 0 (first) for everything else, then oldest.
    priority: Mapped[int] = mapped_column(sa.SmallInteger, server_default="0")
    # W3C trace context of the transaction that wrote it (tracing on only), so its
    # delivery continues that request's trace.
    trace: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    __table_args__ = (
        sa.Index(
            "ix_outbox_pending",
            "available_at",
            "id",
            postgresql_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
        ),
        sa.Index(
            "ix_outbox_pending_priority",
            "priority",
            "id",
            postgresql_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
        ),
    )


class WarehouseTask(Base):
    """State of the built-in simulated warehouse, keyed by allocation so every step is
    idempotent: a retried pick, pack or hand-over finds its earlier result here."""

    __tablename__ = "sim_warehouse_tasks"

    allocation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    picked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    packed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    label: Mapped[str | None] = mapped_column(sa.Text)
    labelled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    handed_over_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    tracking_number: Mapped[str | None] = mapped_column(sa.Text)
    released_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    handovers: Mapped[int] = mapped_column(sa.Integer, server_default="0")


class CustomerPreferences(Base):
    """How a customer wants to hear from us. No row means the defaults: instant messages
    on email, no quiet hours."""

    __tablename__ = "customer_preferences"

    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"), primary_key=True)
    channels: Mapped[list[str]] = mapped_column(
        sa.ARRAY(sa.Text), server_default=sa.text("'{email}'"))
    digest: Mapped[str] = mapped_column(sa.Text, server_default="instant")
    timezone: Mapped[str] = mapped_column(sa.Text, server_default="UTC")
    quiet_start: Mapped[Any | None] = mapped_column(sa.Time)
    quiet_end: Mapped[Any | None] = mapped_column(sa.Time)
    opted_out: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default=sa.text("'{}'"))
    segments: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default=sa.text("'{}'"))
    push_token: Mapped[str | None] = mapped_column(sa.Text)
    app_active_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.CheckConstraint("digest IN ('instant', 'daily')", name="digest"),)


PENDING_STAFF_ALERTS = "audience = 'staff' AND status = 'pending' AND line_id IS NULL"
"""Staff alerts not sent yet: the predicate of `ix_notifications_staff_pending`. The
relay's query (`notify.service.DUE_STAFF`) states it too, so the planner can use the
index: one string, so the two cannot drift apart."""


class Notification(Base):
    """Every message we meant to send, and what became of it: the store that makes a
    send at most once (one row per idempotency key) and lets ops see delivery."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    event: Mapped[str] = mapped_column(sa.Text)
    audience: Mapped[str] = mapped_column(sa.Text)  # customer, staff
    customer_id: Mapped[str | None] = mapped_column(sa.Text)
    order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    line_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    sku: Mapped[str | None] = mapped_column(sa.Text)
    # pending (to send now), queued (quiet hours, digest), sent, suppressed, failed, digested
    status: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    channels: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default=sa.text("'{}'"))
    channel: Mapped[str | None] = mapped_column(sa.Text)
    recipient: Mapped[str | None] = mapped_column(sa.Text)
    subject: Mapped[str | None] = mapped_column(sa.Text)
    body_text: Mapped[str | None] = mapped_column(sa.Text)
    body_html: Mapped[str | None] = mapped_column(sa.Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    attempt_log: Mapped[list[Any]] = mapped_column(JSONB, server_default=sa.text("'[]'::jsonb"))
    provider_id: Mapped[str | None] = mapped_column(sa.Text)
    digest_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    event_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    send_after: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending', 'queued', 'sent', 'suppressed', 'failed', 'digested')", name="status"),
        sa.CheckConstraint("audience IN ('customer', 'staff')", name="audience"),
        sa.Index("ix_notifications_customer", "customer_id", "created_at"),
        # Prefix lookups (`<event key>:%`) under any collation.
        sa.Index("ix_notifications_key_prefix", "idempotency_key",
                 postgresql_ops={"idempotency_key": "text_pattern_ops"}),
        sa.Index("ix_notifications_order", "order_id"),
        # The last day's notifications, for the metrics gauge.
        sa.Index("ix_notifications_created_at", "created_at"),
        sa.Index("ix_notifications_due", "send_after",
                 postgresql_where=sa.text("status = 'queued'")),
        # The staff alert relay's poll, in every worker (`notify.service.DUE_STAFF`).
        sa.Index("ix_notifications_staff_pending", "id",
                 postgresql_where=sa.text(PENDING_STAFF_ALERTS)),
    )


class OptOut(Base):
    """A customer leaving a channel, when and how (link, SMS keyword, preferences): the
    opt-out rate counts these, since the preferences row keeps only the current set."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.Index("ix_opt_outs_at", "at"),)


class StaffAlertState(Base):
    """When each staff alert last fired per SKU, so a condition that stays true alerts
    once per cool-down rather than on every order."""

    __tablename__ = "staff_alert_state"

    sku: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Forecast(Base):
    """A SKU's demand forecast as last computed, and the demand history it was made from
    (`history_hash`: a forecast whose history changed since is recomputed when read)."""

    __tablename__ = "forecasts"

    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku", name="fk_forecasts_sku"),
                                     primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    first_week: Mapped[Any] = mapped_column(sa.Date)
    history_hash: Mapped[str] = mapped_column(sa.Text)
    model: Mapped[str] = mapped_column(sa.Text)
    pattern: Mapped[str] = mapped_column(sa.Text)
    fallback: Mapped[bool] = mapped_column(sa.Boolean)
    history_weeks: Mapped[int] = mapped_column(sa.Integer)
    backtest_mae: Mapped[float | None] = mapped_column(sa.Float)
    backtest_mase: Mapped[float | None] = mapped_column(sa.Float)
    error_sd: Mapped[float] = mapped_column(sa.Float)
    weeks: Mapped[list[Any]] = mapped_column(JSONB)


class ReplenishmentPlan(Base):
    """A SKU's replenishment suggestion for one horizon, and a hash of everything it was
    made from (`inputs_hash`: forecast, stock, supply, supplier record, settings, day);
    `GET /replenishment` recomputes only the SKUs whose inputs changed since."""

    __tablename__ = "replenishment_plans"
    __table_args__ = (
        sa.Index("ix_replenishment_plans_rank", "horizon_weeks",
                 sa.text("predicted_backorder_units DESC")),
    )

    sku: Mapped[str] = mapped_column(
        sa.ForeignKey("products.sku", name="fk_replenishment_plans_sku"), primary_key=True)
    horizon_weeks: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    inputs_hash: Mapped[str] = mapped_column(sa.Text)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    supplier_id: Mapped[str | None] = mapped_column(sa.Text)
    suggested_quantity: Mapped[int] = mapped_column(sa.Integer)
    predicted_backorder_units: Mapped[float] = mapped_column(sa.Float)
    order_by: Mapped[Any] = mapped_column(sa.Date, nullable=True)
    item: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Supplier(Base):
    __tablename__ = "suppliers"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())


class PurchaseOrder(Base):
    """Supply on its way, from the ERP. Its lines' expected dates drive every waiting
    line's expected date."""

    __tablename__ = "purchase_orders"

    po_number: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    supplier_id: Mapped[str] = mapped_column(sa.ForeignKey("suppliers.id"))
    status: Mapped[str] = mapped_column(sa.Text, server_default="open")  # open, cancelled
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (sa.CheckConstraint("status IN ('open', 'cancelled')", name="status"),
                      sa.Index("ix_purchase_orders_supplier_id", "supplier_id"))


class PurchaseOrderLine(Base):
    __tablename__ = "purchase_order_lines"

    po_number: Mapped[str] = mapped_column(sa.ForeignKey("purchase_orders.po_number"),
                                           primary_key=True)
    sku: Mapped[str] = mapped_column(sa.ForeignKey("products.sku"), primary_key=True)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    received_quantity: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    expected_at: Mapped[Any] = mapped_column(sa.Date)
    # The first date the supplier promised: what its performance is measured against.
    promised_at: Mapped[Any] = mapped_column(sa.Date)
    cancelled: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint("quantity >= 0", name="quantity"),
        sa.CheckConstraint("received_quantity >= 0", name="received"),
        sa.Index("ix_purchase_order_lines_open", "sku", "expected_at",
                 postgresql_where=sa.text("NOT cancelled AND received_quantity < quantity")),
        # Every line of a SKU, received or not: its latest supplier, at catalogue scale.
        sa.Index("ix_purchase_order_lines_sku", "sku"),
    )


class Refund(Base):
    """A refund the ERP or payment system should make: a cancelled line the customer
    paid for but will never receive (a discontinued SKU)."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    line_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("order_lines.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    customer_id: Mapped[str] = mapped_column(sa.Text)
    sku: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(28, 4))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())


class ApiKey(Base):
    """A caller's credential. Only an HMAC of the secret is kept (keyed with the server's
    pepper), so neither this table nor a backup of it lets anyone in. Keys are revoked,
    never deleted, so the audit trail always names who a key id was."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.Text)
    channel: Mapped[str | None] = mapped_column(sa.Text)
    secret_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_by: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.CheckConstraint("role IN ('channel', 'erp', 'ops', 'admin')", name="role"),
        sa.CheckConstraint("(role = 'channel') = (channel IS NOT NULL)", name="channel"),
    )


class AuditEntry(Base):
    """Who changed what, when, and how it ended. An accepted change writes its row in its
    own transaction; a refused or failed one afterwards, since nothing changed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    key_id: Mapped[str | None] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str | None] = mapped_column(sa.Text)
    method: Mapped[str] = mapped_column(sa.Text)
    path: Mapped[str] = mapped_column(sa.Text)
    resource: Mapped[str | None] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[int | None] = mapped_column(sa.Integer)
    detail: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.CheckConstraint("outcome IN ('accepted', 'rejected', 'failed')", name="outcome"),
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_key_id_at", "key_id", "at"),
        sa.Index("ix_audit_log_resource_at", "resource", "at"),
    )


class Channel(Base):
    """A sales channel and how its orders come in. Platform channels prove their webhooks
    with `secret` (kept encrypted under a key derived from API_KEY_PEPPER: HMAC checks
    need the secret itself, so a hash would not do)."""

    __tablename__ = "channels"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    validation: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=sa.text("'{}'::jsonb"))
    accounts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    default_region: Mapped[str] = mapped_column(sa.Text, server_default="US")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('native', 'shopify', 'woocommerce', 'marketplace', 'edi850')", name="kind"),
    )


class Intake(Base):
    """Every payload a channel sent, and how it ended: accepted (with its order, written
    in the order's own transaction), rejected (the sender's fault) or dead (parked for ops,
    retried when the cause was transient). One row per payload: a platform's redelivery
    of the same `delivery_id` counts in `deliveries`."""

    __tablename__ = "intakes"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    content_type: Mapped[str | None] = mapped_column(sa.Text)
    body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    body_hash: Mapped[str | None] = mapped_column(sa.Text)
    signature: Mapped[str] = mapped_column(sa.Text)
    delivery_id: Mapped[str | None] = mapped_column(sa.Text)
    deliveries: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    state: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    message: Mapped[str | None] = mapped_column(sa.Text)
    field: Mapped[str | None] = mapped_column(sa.Text)
    transient: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    next_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    order_number: Mapped[str | None] = mapped_column(sa.Text)
    order_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("orders.id"))
    order_value: Mapped[Decimal | None] = mapped_column(sa.Numeric(28, 4))
    customer_tier: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.CheckConstraint("state IN ('accepted', 'rejected', 'dead')", name="state"),
        sa.CheckConstraint("signature IN ('valid', 'invalid', 'missing', 'key')",
                           name="signature"),
        sa.Index("uq_intakes_channel_delivery_id", "channel", "delivery_id", unique=True,
                 postgresql_where=sa.text("delivery_id IS NOT NULL")),
        sa.Index("ix_intakes_channel_received_at", "channel", "received_at"),
        sa.Index("ix_intakes_open", "state", "reason", postgresql_where=sa.text("state <> 'accepted'")),
        sa.Index("ix_intakes_retry", "next_attempt_at",
                 postgresql_where=sa.text("state = 'dead' AND transient")),
    )


class DashboardSession(Base):
    """A dashboard sign-in. The cookie carries only its (signed) id."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    key_id: Mapped[str] = mapped_column(sa.ForeignKey("api_keys.id"))
    csrf: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=_now())
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (sa.Index("ix_dashboard_sessions_key_id", "key_id"),)
