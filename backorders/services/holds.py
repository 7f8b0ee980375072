"""Ship-complete orders: every line holds what it was given until the whole order can
ship at once, then all of them are released together."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from backorders.contracts.line import ReleaseHold
from backorders.services import lines
from backorders.services.unit_of_work import UnitOfWork


async def release_complete_orders(uow: UnitOfWork, order_ids: Iterable[uuid.UUID]) -> None:
    """Release the ship-complete orders among `order_ids` that no longer wait for any
    unit, and tell their lines."""
    ids = list(set(order_ids))
    if not ids:
        return
    conn = uow.conn
    released = (await conn.execute(sa.text(
        """
        UPDATE orders o SET released_at = now()
        WHERE o.id = ANY(:ids) AND o.ship_complete AND o.released_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM order_lines l
                          WHERE l.order_id = o.id AND l.waiting_quantity > 0)
        RETURNING o.id
        """), {"ids": ids})).scalars().all()
    if not released:
        return
    line_ids = (await conn.execute(sa.text(
        "SELECT id FROM order_lines WHERE order_id = ANY(:ids) ORDER BY id"),
        {"ids": list(released)})).scalars().all()
    await lines.record(conn, [lines.Event(line_id, "released",
                                          "every line of the order is in hand: shipping together")
                              for line_id in line_ids])
    await uow.send([(line_id, ReleaseHold()) for line_id in line_ids])
