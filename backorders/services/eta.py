"""The expected date of every waiting line.

A SKU's expected dates come from walking its queue, in allocation order, against its open
purchase order lines in expected-date order: a line is expected when the purchase order
line that covers its last waiting unit arrives, plus the handling lead time. Lines that
no open purchase order covers are `no_supply`, so staff can source them. Dates are
recomputed in the transaction that changes the queue or the supply, and the lines whose
date changed hear it through their workflow (which tells the customer when
`domain.eta.EtaChange` says it is worth it)."""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa

from backorders.contracts.line import EtaNotice
from backorders.domain import queue
from backorders.domain.eta import EtaChange
from backorders.services import lines
from backorders.services.incoming import OPEN_SUPPLY, OUTSTANDING
from backorders.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


async def refresh_expected_dates(uow: UnitOfWork, sku: str) -> None:
    """Recompute the SKU's expected dates; tell the lines whose date changed. The caller
    holds the SKU's stock lock (see `units.units_changed`, the one caller)."""
    conn = uow.conn
    policy = (await conn.execute(sa.text("SELECT allocation_policy FROM products WHERE sku = :s"),
                                 {"s": sku})).scalar_one()
    changed = (await conn.execute(sa.text(
        f"""
        WITH s AS (
            SELECT pl.expected_at,
                   sum({OUTSTANDING})
                       OVER (ORDER BY pl.expected_at, pl.po_number ROWS UNBOUNDED PRECEDING)
                       AS supply_to
            {OPEN_SUPPLY}
        ), front AS (
            -- Every waiting line wants at least one unit, so open supply can reach no
            -- further than its first `supply` lines: the walk costs what is on order,
            -- not the length of the queue.
            SELECT l.id, l.waiting_quantity, l.placed_at, l.seq, l.tier_rank, l.order_value,
                   l.expected_date AS before, l.no_supply AS no_supply_before
            FROM order_lines l WHERE l.sku = :sku AND l.waiting_quantity > 0
            ORDER BY {queue.queue_order_by(policy)}
            LIMIT (SELECT coalesce(max(supply_to), 0) FROM s)
        ), eta AS (
            SELECT q.id, q.before, q.no_supply_before,
                   (SELECT s.expected_at FROM s WHERE s.supply_to >= q.demand_to
                    ORDER BY s.supply_to LIMIT 1) AS arrives
            FROM (SELECT f.*, sum(f.waiting_quantity) OVER (
                      ORDER BY {queue.queue_order_by(policy, alias="f")}
                      ROWS UNBOUNDED PRECEDING) AS demand_to
                  FROM front f) q
        ), dated AS (
            UPDATE order_lines l
            SET expected_date = eta.arrives + :lead, no_supply = eta.arrives IS NULL
            FROM eta
            WHERE l.id = eta.id
              AND (l.expected_date IS DISTINCT FROM eta.arrives + :lead
                   OR l.no_supply IS DISTINCT FROM (eta.arrives IS NULL))
            RETURNING l.id, eta.before, l.expected_date AS after, eta.no_supply_before,
                      l.no_supply
        ), beyond AS (
            -- Lines behind the front that still have a date (or were never dated): the
            -- partial index on lines not yet marked keeps this off the rest of the queue.
            UPDATE order_lines l
            SET expected_date = NULL, no_supply = true
            FROM (SELECT r.id, r.expected_date AS before, r.no_supply AS no_supply_before
                  FROM order_lines r
                  WHERE r.sku = :sku AND r.waiting_quantity > 0 AND NOT r.no_supply
                    AND r.id NOT IN (SELECT id FROM front)) b
            WHERE l.id = b.id
            RETURNING l.id, b.before, l.expected_date AS after, b.no_supply_before, l.no_supply
        )
        SELECT * FROM dated UNION ALL SELECT * FROM beyond
        """), {"sku": sku, "lead": uow.settings.eta_handling_days})).all()
    changes = [EtaChange(r.id, r.before, r.after, r.no_supply_before, r.no_supply)
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
        )))
        events.append(lines.Event(change.line_id, "expected_date", change.reason(),
                                  {"before": change.before, "after": change.after,
                                   "told": change.worth_telling}))
    await lines.record(conn, events)
    if changes:
        log.info("%s: expected dates changed on %d waiting line(s), %d told", sku,
                 len(changes), sum(c.worth_telling for c in changes))
    await uow.send(messages)
