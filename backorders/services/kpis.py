"""KPIs computed from the ledger and the notification store, never estimated.

Each KPI is a facts query: one row per thing it counts (a dispatched allocation, a
cancellation, a message, a line), with when it happened (`at`), the scope it belongs to
(`sku`, `channel`, `customer_id`) and its measure (`num`/`den` for a ratio, `value` for
a distribution, `n` for a count). The same facts give the figure for a period and the
series by day or week, so a chart and its tile cannot disagree. What each KPI means and
its target are in `backorders.domain.kpis`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.domain.kpis import AGEING_BUCKETS, COUNTS, KPIS, Kpi, Shape
from backorders.notify.store import ALERT_ALLOCATION, TIMED_ALERT
from backorders.services.errors import Invalid

Bucket = Literal["day", "week"]

_LINE_SCOPE = "l.sku, o.channel, l.customer_id"

_BACKORDER_RESOLUTIONS = f"""
    SELECT a.dispatched_at AS at, {_LINE_SCOPE}, a.quantity AS num, a.quantity AS den
    FROM allocations a JOIN order_lines l ON l.id = a.line_id JOIN orders o ON o.id = l.order_id
    WHERE a.source <> 'stock' AND a.status = 'dispatched'
    UNION ALL
    SELECT a.cancelled_at, {_LINE_SCOPE}, 0, a.quantity
    FROM allocations a JOIN order_lines l ON l.id = a.line_id JOIN orders o ON o.id = l.order_id
    WHERE a.source <> 'stock' AND a.status = 'cancelled'
    UNION ALL
    SELECT e.at, {_LINE_SCOPE}, 0, CAST(e.data ->> 'waiting' AS int)
    FROM line_events e JOIN order_lines l ON l.id = e.line_id JOIN orders o ON o.id = l.order_id
    WHERE e.kind = 'cancelled' AND CAST(e.data ->> 'waiting' AS int) > 0
"""
"""Every backordered unit that resolved: shipped (num = den) or cancelled (num = 0).
A unit backordered at intake is later allocated from a receipt, a count or freed units
(any source but `stock`) and then dispatched or cancelled, or is cancelled waiting."""

_CANCELLED_BACKORDERS = f"""
    SELECT at, sku, channel, customer_id, den - num AS num, den
    FROM ({_BACKORDER_RESOLUTIONS}) r
"""

_LINE_ENDS = """
    SELECT l.*, o.channel, o.placed_at AS order_placed_at, d.*
    FROM order_lines l JOIN orders o ON o.id = l.order_id
    CROSS JOIN LATERAL (
        SELECT max(a.dispatched_at) FILTER (WHERE a.source <> 'stock') AS last_backordered_at,
               bool_and(a.status IN ('dispatched', 'cancelled'))
                   FILTER (WHERE a.source <> 'stock') AS backordered_done,
               count(*) FILTER (WHERE a.source <> 'stock' AND a.status = 'cancelled')
                   AS backordered_cancelled,
               max(a.dispatched_at) AS last_dispatched_at,
               greatest(max(a.dispatched_at), max(a.cancelled_at),
                        (SELECT max(e.at) FROM line_events e
                         WHERE e.line_id = l.id AND e.kind = 'cancelled')) AS settled_at,
               bool_and(a.status IN ('dispatched', 'cancelled')) AS all_done
        FROM allocations a WHERE a.line_id = l.id
    ) d
    WHERE l.waiting_quantity = 0
"""
"""Lines with nothing left waiting, with when their backordered units last shipped and
when the line settled (its last unit shipped or cancelled)."""

_BACKORDER_DURATIONS = f"""
    SELECT s.last_backordered_at AS at, s.sku, s.channel, s.customer_id,
           extract(epoch FROM s.last_backordered_at - s.created_at) / 86400.0 AS value
    FROM ({_LINE_ENDS}) s
    WHERE s.initial_backordered > 0 AND s.backordered_done AND s.backordered_cancelled = 0
      AND s.cancelled_quantity = 0 AND s.last_backordered_at IS NOT NULL
"""
"""Dated when the last backordered unit shipped: the moment the fact became true, so a
closed period's figure never changes afterwards. Lines whose backordered units were
partly cancelled are left out: their last waiting unit was not dispatched."""

_LEAD_TIMES = f"""
    SELECT s.settled_at AS at, s.sku, s.channel, s.customer_id,
           extract(epoch FROM s.last_dispatched_at - s.order_placed_at) / 86400.0 AS value
    FROM ({_LINE_ENDS}) s
    WHERE s.all_done AND s.last_dispatched_at IS NOT NULL
"""
"""Placed to last unit dispatched, dated when the line settled (a later cancellation of
its rest settles it then, not retroactively)."""

_DISPATCHES = """
    SELECT m.created_at AS at, m.sku, o.channel, l.customer_id, -m.delta AS den,
           CASE WHEN a.status = 'dispatched' AND a.quantity = -m.delta AND a.sku = m.sku
                     AND count(*) OVER (PARTITION BY m.reference) = 1
                THEN -m.delta ELSE 0 END AS num
    FROM inventory_movements m
    LEFT JOIN allocations a ON CAST(a.id AS text) = m.reference
    LEFT JOIN order_lines l ON l.id = a.line_id
    LEFT JOIN orders o ON o.id = l.order_id
    WHERE m.reason = 'dispatch'
"""
"""Every unit that left the shelf, from the stock movement its dispatch wrote: exact when
its allocation says dispatched, for the same SKU and quantity, and no other movement
dispatched that allocation."""

_MESSAGES = """
    SELECT coalesce(n.sent_at, n.failed_at) AS at, n.sku, o.channel, n.customer_id,
           CASE WHEN n.status = 'sent' THEN 1 ELSE 0 END AS num, 1 AS den
    FROM notifications n LEFT JOIN orders o ON o.id = n.order_id
    WHERE n.audience = 'customer' AND n.status IN ('sent', 'failed')
"""

_ALERT_TIMES = f"""
    SELECT n.sent_at AS at, n.sku, o.channel, n.customer_id,
           extract(epoch FROM n.sent_at - a.created_at) AS value
    FROM notifications n
    JOIN allocations a ON {ALERT_ALLOCATION}
    LEFT JOIN orders o ON o.id = n.order_id
    WHERE {TIMED_ALERT}
"""
"""The same measure as the `backorders_time_to_alert_seconds` metric (`notify.store`)."""

_PLACED_LINES = f"""
    SELECT l.created_at AS at, {_LINE_SCOPE}, l.quantity, l.fulfillable_quantity,
           l.initial_backordered
    FROM order_lines l JOIN orders o ON o.id = l.order_id
"""

_FILL = f"SELECT at, sku, channel, customer_id, fulfillable_quantity AS num, quantity AS den " \
        f"FROM ({_PLACED_LINES}) p"
_BACKORDERED_LINES = f"""
    SELECT at, sku, channel, customer_id,
           CASE WHEN initial_backordered > 0 THEN 1 ELSE 0 END AS num, 1 AS den
    FROM ({_PLACED_LINES}) p
"""

_BACKORDERS_CREATED = f"""
    SELECT at, sku, channel, customer_id, initial_backordered AS n
    FROM ({_PLACED_LINES}) p WHERE initial_backordered > 0
"""
_BACKORDERS_FULFILLED = f"""
    SELECT at, sku, channel, customer_id, num AS n FROM ({_BACKORDER_RESOLUTIONS}) r WHERE num > 0
"""
_BACKORDERS_CANCELLED = f"""
    SELECT at, sku, channel, customer_id, den AS n FROM ({_BACKORDER_RESOLUTIONS}) r WHERE num = 0
"""

_FACTS: dict[str, str] = {
    "backorder_conversion_rate": _BACKORDER_RESOLUTIONS,
    "cancellation_rate": _CANCELLED_BACKORDERS,
    "average_backorder_duration_days": _BACKORDER_DURATIONS,
    "fulfillment_accuracy": _DISPATCHES,
    "notification_delivery_rate": _MESSAGES,
    "time_to_alert_seconds": _ALERT_TIMES,
    "fill_rate": _FILL,
    "backorder_rate": _BACKORDERED_LINES,
    "lead_time_days": _LEAD_TIMES,
    "backorders_created": _BACKORDERS_CREATED,
    "backorders_fulfilled": _BACKORDERS_FULFILLED,
    "backorders_cancelled": _BACKORDERS_CANCELLED,
}

_PERCENTILES: dict[str, tuple[str, ...]] = {
    "average_backorder_duration_days": ("p50", "p90"),
    "lead_time_days": ("p50", "p90"),
    "time_to_alert_seconds": ("p50", "p95"),
}


@dataclass(frozen=True)
class Scope:
    sku: str | None = None
    channel: str | None = None
    customer_id: str | None = None

    def where(self, alias: str) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for name in ("sku", "channel", "customer_id"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{alias}.{name} = :scope_{name}")
                params[f"scope_{name}"] = value
        return "".join(f" AND {c}" for c in clauses), params


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    """Exclusive."""

    @classmethod
    def of(cls, start: datetime | None, end: datetime | None, now: datetime,
           default_days: int = 30) -> Period:
        end = end or now
        start = start or end - timedelta(days=default_days)
        if start >= end:
            raise Invalid("period_empty", "`from` must be before `to`", field="from")
        return cls(start, end)


def _round(value: Any, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _judge(kpi: Kpi, figure: dict[str, Any]) -> dict[str, Any]:
    measured = figure.get(kpi.judged_on)
    return {**figure, "target": kpi.target, "goal": kpi.goal.value if kpi.goal else None,
            "meets_target": kpi.meets(measured), "definition": kpi.definition,
            "title": kpi.title, "unit": kpi.unit.value, "judged_on": kpi.judged_on}


def _shape(key: str) -> Shape:
    """A KPI's shape; the charted flows (`COUNTS`) are counts."""
    return KPIS[key].shape if key in KPIS else Shape.COUNT


def _aggregate(key: str) -> str:
    shape = _shape(key)
    if shape is Shape.RATIO:
        return "sum(f.num) AS numerator, sum(f.den) AS denominator"
    if shape is Shape.DISTRIBUTION:
        cuts = ", ".join(
            f"percentile_cont({int(p[1:]) / 100}) WITHIN GROUP (ORDER BY f.value) AS {p}"
            for p in _PERCENTILES[key])
        return f"avg(f.value) AS mean, {cuts}, max(f.value) AS max, count(*) AS count"
    return "coalesce(sum(f.n), 0) AS count"


def _figure(key: str, row: Any) -> dict[str, Any]:
    shape = _shape(key)
    if shape is Shape.RATIO:
        num, den = int(row.numerator or 0), int(row.denominator or 0)
        return {"value": _round(num / den) if den else None, "numerator": num, "denominator": den}
    if shape is Shape.DISTRIBUTION:
        digits = 1 if KPIS[key].unit.value == "seconds" else 2
        return {"value": _round(row.mean, digits), "count": int(row.count),
                "max": _round(row.max, digits),
                **{p: _round(getattr(row, p), digits) for p in _PERCENTILES[key]}}
    return {"value": int(row.count)}


async def _one(conn: AsyncConnection, key: str, period: Period, scope: Scope) -> dict[str, Any]:
    where, params = scope.where("f")
    sql = f"""SELECT {_aggregate(key)} FROM ({_FACTS[key]}) f
              WHERE f.at >= :start AND f.at < :end{where}"""
    row = (await conn.execute(sa.text(sql), {**params, "start": period.start,
                                             "end": period.end})).one()
    return _figure(key, row)


async def _opt_out_rate(conn: AsyncConnection, period: Period, scope: Scope) -> dict[str, Any]:
    """Distinct customers, not events: a customer who leaves two channels counts once,
    and only customers messaged in the period count (so it stays a share of them)."""
    where, params = scope.where("m")
    row = (await conn.execute(sa.text(f"""
        WITH messaged AS (
            SELECT DISTINCT m.customer_id FROM ({_MESSAGES}) m
            WHERE m.num = 1 AND m.at >= :start AND m.at < :end{where}
        ), left_ AS (
            SELECT DISTINCT x.customer_id FROM opt_outs x
            WHERE x.at >= :start AND x.at < :end
              AND x.customer_id IN (SELECT customer_id FROM messaged)
        )
        SELECT (SELECT count(*) FROM left_) AS numerator,
               (SELECT count(*) FROM messaged) AS denominator
    """), {**params, "start": period.start, "end": period.end})).one()
    return _figure("opt_out_rate", row)


async def _sla_breaches(conn: AsyncConnection, scope: Scope, now: datetime) -> dict[str, Any]:
    """As things stand now (a period's end would need every line's quantities as they
    were then): lines past their promised date with units outstanding."""
    where, params = scope.where("b")
    rows = (await conn.execute(sa.text(f"""
        SELECT b.customer_id, max(b.customer_tier) AS tier, count(*) AS lines,
               sum(b.outstanding) AS units, min(b.promised_date) AS oldest_promise
        FROM (
            SELECT l.customer_id, l.sku, o.channel, o.customer_tier, l.promised_date,
                   l.quantity - l.shipped_quantity - l.cancelled_quantity AS outstanding
            FROM order_lines l JOIN orders o ON o.id = l.order_id
            WHERE l.promised_date < CAST(CAST(:now AS timestamptz) AT TIME ZONE 'UTC' AS date)
              AND l.quantity - l.shipped_quantity - l.cancelled_quantity > 0
        ) b
        WHERE true{where}
        GROUP BY b.customer_id ORDER BY count(*) DESC, b.customer_id
    """), {**params, "now": now})).all()
    return {"value": sum(int(r.lines) for r in rows),
            "customers": len(rows),
            "by_customer": [{"customer_id": r.customer_id, "tier": r.tier,
                             "lines": int(r.lines), "units": int(r.units),
                             "oldest_promised_date": r.oldest_promise.isoformat()}
                            for r in rows[:50]]}


async def ageing(conn: AsyncConnection, scope: Scope, now: datetime) -> dict[str, Any]:
    """Waiting units and lines now, by whole days waited."""
    where, params = scope.where("w")
    cases = " ".join(
        f"WHEN w.days >= {low}" + (f" AND w.days <= {high}" if high is not None else "")
        + f" THEN '{label}'" for label, low, high in AGEING_BUCKETS)
    rows = (await conn.execute(sa.text(f"""
        SELECT CASE {cases} END AS bucket, count(*) AS lines, sum(w.waiting_quantity) AS units
        FROM (
            SELECT l.sku, o.channel, l.customer_id, l.waiting_quantity,
                   floor(extract(epoch FROM CAST(:now AS timestamptz) - l.created_at) / 86400)
                       AS days
            FROM order_lines l JOIN orders o ON o.id = l.order_id
            WHERE l.waiting_quantity > 0
        ) w
        WHERE true{where}
        GROUP BY 1
    """), {**params, "now": now})).all()
    found = {r.bucket: r for r in rows}
    buckets = [{"bucket": label, "lines": int(found[label].lines) if label in found else 0,
                "units": int(found[label].units) if label in found else 0}
               for label, _, _ in AGEING_BUCKETS]
    return {"buckets": buckets, "lines": sum(b["lines"] for b in buckets),
            "units": sum(b["units"] for b in buckets)}


async def _figure_of(conn: AsyncConnection, key: str, period: Period, scope: Scope,
                    now: datetime) -> dict[str, Any]:
    if key == "opt_out_rate":
        figure = await _opt_out_rate(conn, period, scope)
    elif key == "sla_breaches":
        figure = await _sla_breaches(conn, scope, now)
    else:
        figure = await _one(conn, key, period, scope)
    return _judge(KPIS[key], figure)


async def some(engine: AsyncEngine, period: Period, scope: Scope, now: datetime,
               keys: list[str]) -> list[dict[str, Any]]:
    """Just these KPIs, for a page that shows a few."""
    async with engine.connect() as conn:
        return [await _figure_of(conn, key, period, scope, now) for key in keys]


async def kpis(engine: AsyncEngine, period: Period, scope: Scope,
               now: datetime) -> dict[str, Any]:
    """Every KPI for the period and scope, each with its target and definition."""
    async with engine.connect() as conn:
        figures: dict[str, Any] = {}
        for key in KPIS:
            figures[key] = await _figure_of(conn, key, period, scope, now)
        figures["ageing"] = await ageing(conn, scope, now)
    return {"from": period.start, "to": period.end,
            "scope": {"sku": scope.sku, "channel": scope.channel,
                      "customer_id": scope.customer_id},
            "kpis": figures}


MAX_POINTS = 400


async def series(engine: AsyncEngine, metric: str, bucket: Bucket, period: Period,
                 scope: Scope) -> dict[str, Any]:
    """One metric per day or week (UTC), every bucket present (empty ones with no value)."""
    if metric not in _FACTS:
        raise Invalid("unknown_metric", f"metric must be one of {', '.join(sorted(_FACTS))}",
                      field="metric")
    step = timedelta(days=7 if bucket == "week" else 1)
    if (period.end - period.start) / step > MAX_POINTS:
        raise Invalid("period_too_long", f"at most {MAX_POINTS} {bucket}s per series",
                      field="from")
    where, params = scope.where("f")
    sql = f"""
        WITH points AS (
            SELECT date_trunc(:bucket, f.at AT TIME ZONE 'UTC') AS start, {_aggregate(metric)}
            FROM ({_FACTS[metric]}) f
            WHERE f.at >= :start AND f.at < :end{where}
            GROUP BY 1
        ), buckets AS (
            SELECT generate_series(date_trunc(:bucket, CAST(:start AS timestamptz) AT TIME ZONE 'UTC'),
                                   CAST(:end AS timestamptz) AT TIME ZONE 'UTC' - interval '1 microsecond',
                                   CAST(:step AS interval)) AS start
        )
        SELECT b.start AS bucket_start, p.* FROM buckets b LEFT JOIN points p ON p.start = b.start
        ORDER BY b.start
    """
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(sql), {
            **params, "bucket": bucket, "start": period.start, "end": period.end,
            "step": f"{step.days} days"})).all()
    points = []
    for r in rows:
        if r.start is None:
            figure: dict[str, Any] = _empty(metric)
        else:
            figure = _figure(metric, r)
        points.append({"start": r.bucket_start.date().isoformat(), **figure})
    kpi = KPIS.get(metric)
    return {"metric": metric, "bucket": bucket, "from": period.start, "to": period.end,
            "definition": kpi.definition if kpi else COUNTS[metric],
            "target": kpi.target if kpi else None, "points": points}


def _empty(metric: str) -> dict[str, Any]:
    shape = _shape(metric)
    if shape is Shape.RATIO:
        return {"value": None, "numerator": 0, "denominator": 0}
    if shape is Shape.DISTRIBUTION:
        return {"value": None, "count": 0, "max": None,
                **{p: None for p in _PERCENTILES[metric]}}
    return {"value": 0}
