"""Locking a SKU's stock row: every change to a SKU's units goes through here first.

Rows are locked in SKU order so transactions touching several SKUs cannot deadlock;
the global lock order is stock, then lines, then allocations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backorders.domain.customers import AllocationPolicy


@dataclass
class StockRow:
    sku: str
    on_hand: int
    reserved: int
    backordered: int
    allocation_policy: AllocationPolicy
    backorder_allowed: bool
    backorder_max_quantity: int | None
    discontinued: bool
    low_stock_threshold: int | None = None
    backorder_until: date | None = None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


LOCK_ONE = sa.text("SELECT 1 FROM stock WHERE sku = :sku FOR UPDATE")
"""`lock` for one SKU when only the lock is wanted (the dispatch ledger's first step)."""


async def lock(conn: AsyncConnection, skus: Iterable[str]) -> dict[str, StockRow]:
    rows = await conn.execute(
        sa.text(
            """
            SELECT s.sku, s.on_hand, s.reserved, s.backordered, p.allocation_policy,
                   p.backorder_allowed, p.backorder_max_quantity, p.discontinued,
                   p.low_stock_threshold, p.backorder_until
            FROM stock s JOIN products p ON p.sku = s.sku
            WHERE s.sku = ANY(:skus)
            ORDER BY s.sku
            FOR UPDATE OF s
            """
        ),
        {"skus": sorted(set(skus))},
    )
    return {
        r.sku: StockRow(
            sku=r.sku,
            on_hand=r.on_hand,
            reserved=r.reserved,
            backordered=r.backordered,
            allocation_policy=AllocationPolicy(r.allocation_policy),
            backorder_allowed=r.backorder_allowed,
            backorder_max_quantity=r.backorder_max_quantity,
            discontinued=r.discontinued,
            low_stock_threshold=r.low_stock_threshold,
            backorder_until=r.backorder_until,
        )
        for r in rows
    }


async def save(conn: AsyncConnection, row: StockRow) -> None:
    await conn.execute(
        sa.text(
            """
            UPDATE stock SET on_hand = :on_hand, reserved = :reserved,
                             backordered = :backordered, updated_at = now()
            WHERE sku = :sku
            """
        ),
        {"sku": row.sku, "on_hand": row.on_hand, "reserved": row.reserved,
         "backordered": row.backordered},
    )


async def record_movement(
    conn: AsyncConnection, row: StockRow, delta: int, reason: str, reference: str | None
) -> None:
    await conn.execute(
        sa.text(
            """
            INSERT INTO inventory_movements (sku, delta, on_hand_after, reason, reference)
            VALUES (:sku, :delta, :after, :reason, :reference)
            """
        ),
        {"sku": row.sku, "delta": delta, "after": row.on_hand, "reason": reason,
         "reference": reference},
    )
