"""The one step every transaction that changed a SKU's units ends with.

Orders, receipts, stock counts, purchase orders, product changes and cancellations all
finish the same way, in the same order: save the stock rows, hand free units to the
waiting lines (when the change freed or added any), re-date the queues, evaluate the
staff alerts, and release the ship-complete orders that are now complete. What each
stage hands to the line workflows is collected by the unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from backorders.services import alerts, eta, holds, stock
from backorders.services.allocation import Allocated, Restock, allocate_to_queue
from backorders.services.stock import StockRow
from backorders.services.unit_of_work import UnitOfWork


@dataclass
class Settled:
    allocations: dict[str, list[Allocated]]
    """Per SKU, what its waiting lines were given, in queue order."""

    def of(self, sku: str) -> list[Allocated]:
        return self.allocations.get(sku, [])


async def units_changed(
    uow: UnitOfWork,
    rows: Iterable[StockRow],
    *,
    restock: Restock | None = None,
    new_backorders: Collection[str] = (),
    supply_changed: bool = False,
    queue_changed: bool = False,
    orders: Iterable[uuid.UUID] = (),
) -> Settled:
    """Finish a change to the units of `rows` (locked by the caller).

    `restock`: units became free and go to the queue first. `new_backorders`: SKUs with
    newly waiting units; they, and every SKU when `supply_changed` (a purchase order
    moved), have their shortfall checked. `queue_changed`: the queue's order may differ
    (a policy change). A SKU is re-dated when any of these touched its queue. `orders`:
    ship-complete orders to release if they no longer wait (those an allocation gave
    units to are added)."""
    settled = Settled({})
    to_release = set(orders)
    for row in sorted(rows, key=lambda r: r.sku):
        if restock is not None:
            run = await allocate_to_queue(uow, row, restock)
            uow.allocated = uow.allocated or bool(run.allocations)
            settled.allocations[row.sku] = run.allocations
            to_release.update(run.held_orders)
        await stock.save(uow.conn, row)
        short = supply_changed or row.sku in new_backorders
        if short or queue_changed or restock is not None:
            await eta.refresh_expected_dates(uow, row.sku)
        await alerts.stock_changed(uow, row)
        if short:
            await alerts.check_shortfall(uow, row)
        if restock is not None and restock.receipt is not None:
            await alerts.receipt_processed(uow, row, restock.receipt,
                                           settled.of(row.sku))
    await holds.release_complete_orders(uow, to_release)
    return settled
