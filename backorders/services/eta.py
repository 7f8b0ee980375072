"""The expected date of every waiting line.

A SKU's expected dates come from walking its queue, in allocation order, against its open
purchase order lines in expected-date order: a line is expected when the purchase order
line that covers its last waiting unit arrives, plus the handling lead time. Lines that
no open purchase order covers are `no_supply`, so staff can source them. Beside it, the
line's likely and latest dates shift the covering purchase order line's promise by its
supplier's delay quantiles (`domain.delays.honest_dates`, history from
`services.supplier_delays`); without history they equal the expected date. Dates are
recomputed in the transaction that changes the queue or the supply, and the lines whose
date changed hear it through their workflow (which tells the customer when
`domain.eta.EtaChange` says it is worth it)."""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.contracts.line import EtaNotice
from backorders.db import autocommit
from backorders.domain import delays, queue
from backorders.domain.eta import EtaChange
from backorders.services import lines, stock, supplier_delays, unit_of_work
from backorders.services.incoming import OPEN_SUPPLY, OUTSTANDING, SUPPLIER_OPEN_SKUS
from backorders.services.unit_of_work import HandOff, UnitOfWork
from backorders.settings import Settings

log = logging.getLogger(__name__)


async def refresh_expected_dates(uow: UnitOfWork, sku: str) -> None:
    """Recompute the SKU's expected, likely and latest dates; tell the lines whose dates
    changed. The caller holds the SKU's stock lock (see `units.units_changed`, the one
    caller)."""
    conn = uow.conn
    settings = uow.settings
    sku_row = (await conn.execute(sa.text(
        f"""
        SELECT p.allocation_policy,
               ARRAY(SELECT DISTINCT po.supplier_id {OPEN_SUPPLY}) AS suppliers
        FROM products p WHERE p.sku = :sku
        """), {"sku": sku})).one()
    policy = sku_row.allocation_policy
    # Once per call, for the suppliers of the SKU's open supply only: their delay
    # quantiles go into the walk as three arrays, not a query per line.
    quantiles = (delays.supplier_quantiles(
        await supplier_delays.delay_samples(conn, sku_row.suppliers),
        settings.eta_likely_quantile, settings.eta_latest_quantile)
        if sku_row.suppliers else {})
    changed = (await conn.execute(sa.text(
        f"""
        WITH d AS (
            SELECT * FROM unnest(CAST(:suppliers AS text[]), CAST(:likely AS int[]),
                                 CAST(:latest AS int[])) AS d(supplier_id, likely, latest)
        ), s AS (
            SELECT pl.expected_at, pl.promised_at, po.supplier_id,
                   sum({OUTSTANDING})
                       OVER (ORDER BY pl.expected_at, pl.po_number ROWS UNBOUNDED PRECEDING)
                       AS supply_to
            {OPEN_SUPPLY}
        ), front AS (
            -- Every waiting line wants at least one unit, so open supply can reach no
            -- further than its first `supply` lines: the walk costs what is on order,
            -- not the length of the queue.
            SELECT l.id, l.waiting_quantity, l.placed_at, l.seq, l.tier_rank, l.order_value,
                   l.expected_date AS before, l.no_supply AS no_supply_before,
                   l.likely_date AS likely_before, l.latest_date AS latest_before
            FROM order_lines l WHERE l.sku = :sku AND l.waiting_quantity > 0
            ORDER BY {queue.queue_order_by(policy)}
            LIMIT (SELECT coalesce(max(supply_to), 0) FROM s)
        ), covered AS (
            -- The open purchase order line that covers the line's last waiting unit.
            SELECT q.*, po.expected_at, po.promised_at, po.supplier_id
            FROM (SELECT f.*, sum(f.waiting_quantity) OVER (
                      ORDER BY {queue.queue_order_by(policy, alias="f")}
                      ROWS UNBOUNDED PRECEDING) AS demand_to
                  FROM front f) q
            LEFT JOIN LATERAL (SELECT s.expected_at, s.promised_at, s.supplier_id FROM s
                               WHERE s.supply_to >= q.demand_to
                               ORDER BY s.supply_to LIMIT 1) po ON true
        ), eta AS (
            -- domain.delays.honest_dates: the promise shifted by the supplier's delay
            -- quantile, never before the purchase order's own date; no history: its date.
            SELECT c.id, c.before, c.no_supply_before, c.likely_before, c.latest_before,
                   c.expected_at + :lead AS expected,
                   greatest(c.expected_at, coalesce(c.promised_at + d.likely, c.expected_at))
                       + :lead AS likely,
                   greatest(c.expected_at, coalesce(c.promised_at + d.latest, c.expected_at))
                       + :lead AS latest
            FROM covered c LEFT JOIN d ON d.supplier_id = c.supplier_id
        ), dated AS (
            UPDATE order_lines l
            SET expected_date = eta.expected, no_supply = eta.expected IS NULL,
                likely_date = eta.likely, latest_date = eta.latest
            FROM eta
            WHERE l.id = eta.id
              AND (l.expected_date IS DISTINCT FROM eta.expected
                   OR l.no_supply IS DISTINCT FROM (eta.expected IS NULL)
                   OR l.likely_date IS DISTINCT FROM eta.likely
                   OR l.latest_date IS DISTINCT FROM eta.latest)
            RETURNING l.id, eta.before, l.expected_date AS after, eta.no_supply_before,
                      l.no_supply, eta.likely_before, l.likely_date AS likely_after,
                      eta.latest_before, l.latest_date AS latest_after
        ), beyond AS (
            -- Lines behind the front that still have a date (or were never dated): the
            -- partial index on lines not yet marked keeps this off the rest of the queue.
            UPDATE order_lines l
            SET expected_date = NULL, no_supply = true, likely_date = NULL, latest_date = NULL
            FROM (SELECT r.id, r.expected_date AS before, r.no_supply AS no_supply_before,
                         r.likely_date AS likely_before, r.latest_date AS latest_before
                  FROM order_lines r
                  WHERE r.sku = :sku AND r.waiting_quantity > 0 AND NOT r.no_supply
                    AND r.id NOT IN (SELECT id FROM front)) b
            WHERE l.id = b.id
            RETURNING l.id, b.before, l.expected_date AS after, b.no_supply_before,
                      l.no_supply, b.likely_before, l.likely_date AS likely_after,
                      b.latest_before, l.latest_date AS latest_after
        )
        SELECT * FROM dated UNION ALL SELECT * FROM beyond
        """), {"sku": sku, "lead": settings.eta_handling_days,
               "suppliers": list(quantiles),
               "likely": [q.likely for q in quantiles.values()],
               "latest": [q.latest for q in quantiles.values()]})).all()
    changes = [EtaChange(r.id, r.before, r.after, r.no_supply_before, r.no_supply,
                         r.likely_before, r.likely_after, r.latest_before, r.latest_after)
               for r in changed]
    messages: list[tuple[uuid.UUID, EtaNotice]] = []
    events = []
    for change in changes:
        if change.first:
            continue
        messages.append((change.line_id, EtaNotice(
            event_id=str(uuid.uuid4()),
            expected_date=change.after.isoformat() if change.after else None,
            no_supply=change.no_supply,
            tell_customer=change.worth_telling,
            later=change.later,
            reason=change.reason(),
            likely_date=change.likely_after.isoformat() if change.likely_after else None,
            latest_date=change.latest_after.isoformat() if change.latest_after else None,
        )))
        if change.expected_moved:
            events.append(lines.Event(change.line_id, "expected_date", change.reason(),
                                      {"before": change.before, "after": change.after,
                                       "told": change.worth_telling,
                                       "likely": change.likely_after,
                                       "latest": change.latest_after}))
    await lines.record(conn, events)
    if changes:
        log.info("%s: expected dates changed on %d waiting line(s), %d told", sku,
                 len(changes), sum(c.worth_telling for c in changes))
    await uow.send(messages)


async def redate_supplier(engine: AsyncEngine, settings: Settings, purchase_order: str,
                          *, except_sku: str, hand_off: HandOff | None = None) -> int:
    """A receipt against `purchase_order` added to its supplier's delivery record, which
    every waiting line covered by that supplier is dated from: re-date the supplier's
    other SKUs with open supply, each in a transaction of its own under its stock lock
    (the receipt's own SKU was re-dated in the receipt's transaction). Returns how many
    SKUs were looked at."""
    async with autocommit(engine).connect() as conn:
        skus = [sku for sku in (await conn.execute(
            sa.text(SUPPLIER_OPEN_SKUS), {"po": purchase_order})).scalars() if sku != except_sku]
    for sku in skus:
        async def work(uow: UnitOfWork, sku: str = sku) -> None:
            if await stock.lock(uow.conn, [sku]):
                await refresh_expected_dates(uow, sku)

        await unit_of_work.run(engine, settings, work, hand_off)
    return len(skus)
