"""Goods receipts from the ERP: add the units, serve the queue, keep the rest as stock.
The receipt id is the idempotency key: a replay answers the first result again."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders import logs
from backorders.schemas import AllocationOut, ReceiptIn, ReceiptOut
from backorders.services import eta, purchase_orders, stock, unit_of_work
from backorders.services.allocation import ReceivedLot, Restock
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, Invalid, NotFound
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.services.units import units_changed
from backorders.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReceiptResult:
    receipt: ReceiptOut
    created: bool


async def receive(engine: AsyncEngine, body: ReceiptIn, settings: Settings, *,
                  hand_off: HandOff | None = None, audit: Audit | None = None) -> ReceiptResult:
    fingerprint = body.fingerprint()

    async def work(uow: UnitOfWork) -> ReceiptResult:
        conn = uow.conn
        previous = await _replay(conn, body, fingerprint)
        if previous is not None:
            if uow.audit is not None:
                uow.audit.detail = "replayed"
            return previous
        logs.set_ids(receipt_id=body.receipt_id)
        row = (await stock.lock(conn, [body.sku])).get(body.sku)
        if row is None:
            raise Invalid("unknown_sku", f"no product with SKU {body.sku!r}", field="sku")
        inserted = (
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO receipts (receipt_id, sku, quantity, purchase_order, request_hash)
                    VALUES (:receipt_id, :sku, :quantity, :po, :hash)
                    ON CONFLICT (receipt_id) DO NOTHING
                    RETURNING received_at
                    """
                ),
                {"receipt_id": body.receipt_id, "sku": body.sku, "quantity": body.quantity,
                 "po": body.purchase_order, "hash": fingerprint},
            )
        ).one_or_none()
        if inserted is None:  # a concurrent request with the same id committed first
            previous = await _replay(conn, body, fingerprint)
            assert previous is not None
            return previous
        row.on_hand += body.quantity
        await purchase_orders.record_receipt(conn, body.purchase_order, body.sku, body.quantity)
        await stock.record_movement(conn, row, body.quantity, "receipt", body.receipt_id)
        settled = await units_changed(uow, [row], restock=Restock(
            "receipt", f"receipt {body.receipt_id}", ReceivedLot(body.receipt_id, body.quantity)))
        served = settled.of(body.sku)
        allocated = sum(a.quantity for a in served)
        await conn.execute(
            sa.text("UPDATE receipts SET allocated_quantity = :n WHERE receipt_id = :id"),
            {"n": allocated, "id": body.receipt_id},
        )
        log.info("receipt %s: %d x %s, %d allocated to %d waiting line(s), %d to stock",
                 body.receipt_id, body.quantity, body.sku, allocated, len(served),
                 body.quantity - allocated)
        receipt = ReceiptOut(
            receipt_id=body.receipt_id,
            sku=body.sku,
            quantity=body.quantity,
            purchase_order=body.purchase_order,
            received_at=inserted.received_at,
            allocated_quantity=allocated,
            to_stock_quantity=body.quantity - allocated,
            allocations=[
                AllocationOut(allocation_id=a.allocation_id, line_id=a.line_id,
                              order_id=a.order_id, quantity=a.quantity)
                for a in served
            ],
        )
        return ReceiptResult(receipt, True)

    if audit is not None:
        audit.about(body.receipt_id)
    result = await unit_of_work.run(engine, settings, work, hand_off, audit=audit)
    if result.created and body.purchase_order is not None:
        try:
            await eta.redate_supplier(engine, settings, body.purchase_order,
                                      except_sku=body.sku, hand_off=hand_off)
        except Exception:  # the receipt stands; the dates follow at the SKUs' next change
            log.warning("receipt %s: re-dating its supplier's other SKUs failed",
                        body.receipt_id, exc_info=True)
    return result


async def _replay(conn: AsyncConnection, body: ReceiptIn, fingerprint: str) -> ReceiptResult | None:
    row = (
        await conn.execute(
            sa.text("SELECT request_hash FROM receipts WHERE receipt_id = :id"),
            {"id": body.receipt_id},
        )
    ).one_or_none()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise Conflict(
            "receipt_conflict",
            f"receipt {body.receipt_id!r} was already recorded with different contents",
            field="receipt_id",
        )
    return ReceiptResult(await load(conn, body.receipt_id), False)


async def load(conn: AsyncConnection, receipt_id: str) -> ReceiptOut:
    row = (
        await conn.execute(
            sa.text("SELECT * FROM receipts WHERE receipt_id = :id"), {"id": receipt_id}
        )
    ).one_or_none()
    if row is None:
        raise NotFound("unknown_receipt", f"no receipt {receipt_id!r}", field="receipt_id")
    allocations = await conn.execute(
        sa.text(
            """
            SELECT id, line_id, order_id, quantity FROM allocations
            WHERE receipt_id = :id AND source = 'receipt' ORDER BY queue_position
            """
        ),
        {"id": receipt_id},
    )
    return ReceiptOut(
        receipt_id=row.receipt_id,
        sku=row.sku,
        quantity=row.quantity,
        purchase_order=row.purchase_order,
        received_at=row.received_at,
        allocated_quantity=row.allocated_quantity,
        to_stock_quantity=row.quantity - row.allocated_quantity,
        allocations=[
            AllocationOut(allocation_id=a.id, line_id=a.line_id, order_id=a.order_id,
                          quantity=a.quantity)
            for a in allocations
        ],
    )


async def get_receipt(engine: AsyncEngine, receipt_id: str) -> ReceiptOut:
    async with engine.connect() as conn:
        return await load(conn, receipt_id)
