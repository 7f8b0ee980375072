"""Demand forecasts, projected stock and replenishment suggestions per SKU (F21).

Demand is what was asked for: units ordered per day from the order ledger, the
backordered part included, whatever later shipped; cancellations before shipment are
counted beside it. The models see whole Monday weeks, from the week the product was
created or first ordered (whichever is earlier, within `forecast_history_weeks`) to the
last complete week, and forecast from the current week on.

A stored forecast remembers the history it was made from (`history_hash`): reading a
SKU's forecast recomputes it when its history has changed since, so an answer always
reflects the ledger as it is now. Stock, reservations, waiting lines and purchase
orders are read live on every answer."""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.db import autocommit, transaction
from backorders.domain.delays import shifted, supplier_quantiles
from backorders.forecasting.projection import (
    Arrival,
    LeadTime,
    Position,
    Projection,
    Suggestion,
    project,
    suggest,
)
from backorders.notify.message import Event
from backorders.notify.service import cooled_down, record_staff_alert
from backorders.notify.templates import ShortageFacts
from backorders.schemas import (
    DemandDayOut,
    DemandWeekOut,
    ForecastOut,
    ForecastWeekOut,
    ProjectedWeekOut,
    ReplenishmentOut,
    SubstituteOut,
)
from backorders.services import substitutes
from backorders.services.errors import Invalid, NotFound
from backorders.services.incoming import open_lines
from backorders.services.supplier_delays import delay_samples
from backorders.settings import Settings

log = logging.getLogger(__name__)

MIN_LEAD_TIME_SAMPLES = 3
"""Receipts a supplier needs before its own lead times replace the product's."""

PLAN_VERSION = 1
"""Bump when the projection or suggestion rules change: every stored plan is then stale."""
PLAN_RULES = (PLAN_VERSION, MIN_LEAD_TIME_SAMPLES, tuple(ReplenishmentOut.model_fields))
"""What besides its inputs a stored plan depends on (a new field in the answer included)."""
_RULES_DIGEST = hashlib.sha256(repr(PLAN_RULES).encode())


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def today_utc() -> date:
    return datetime.now(UTC).date()


def history_needed(settings: Settings) -> int:
    """Weeks of history a SKU needs for a backtested model (fewer: the fallback)."""
    from backorders.forecasting.models import min_history_weeks  # numpy: only on use

    return min_history_weeks(settings.forecast_horizon_weeks)


# --- Demand history ----------------------------------------------------------------------


async def weekly_demand(conn: AsyncConnection, skus: Sequence[str], first_week: date,
                        weeks: int) -> dict[str, tuple[float, ...]]:
    """Units ordered per whole week before `first_week` (the current week), per SKU."""
    since = first_week - timedelta(weeks=weeks)
    rows = (await conn.execute(sa.text(
        """
        SELECT p.sku, w.week, coalesce(w.units, 0) AS units,
               date_trunc('week', p.created_at AT TIME ZONE 'UTC')::date AS created_week
        FROM products p
        LEFT JOIN (
            SELECT l.sku, date_trunc('week', l.placed_at AT TIME ZONE 'UTC')::date AS week,
                   sum(l.quantity) AS units
            FROM order_lines l
            WHERE l.sku = ANY(:skus) AND l.placed_at >= :since AND l.placed_at < :until
            GROUP BY 1, 2
        ) w ON w.sku = p.sku
        WHERE p.sku = ANY(:skus)
        """), {"skus": list(skus), "since": _midnight(since), "until": _midnight(first_week)}
    )).all()
    found: dict[str, dict[date, float]] = {}
    starts: dict[str, date] = {}
    for r in rows:
        per_week = found.setdefault(r.sku, {})
        starts[r.sku] = min(starts.get(r.sku, r.created_week), r.created_week)
        if r.week is not None:
            per_week[r.week] = float(r.units)
            starts[r.sku] = min(starts[r.sku], r.week)
    out = {}
    for sku, per_week in found.items():
        start = max(since, starts[sku])
        n = max(0, (first_week - start).days // 7)
        out[sku] = tuple(per_week.get(start + timedelta(weeks=i), 0.0) for i in range(n))
    return out


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def history_hash(first_week: date, weekly: Sequence[float]) -> str:
    return hashlib.sha256(json.dumps([first_week.isoformat(), list(weekly)]).encode()).hexdigest()


async def daily_demand(conn: AsyncConnection, sku: str, since: date) -> list[DemandDayOut]:
    """Days with anything ordered or cancelled, oldest first."""
    rows = (await conn.execute(sa.text(
        """
        WITH ordered AS (
            SELECT (l.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel,
                   sum(l.quantity) AS units
            FROM order_lines l JOIN orders o ON o.id = l.order_id
            WHERE l.sku = :sku AND l.placed_at >= :since GROUP BY 1, 2
        ), cancelled AS (
            SELECT (e.at AT TIME ZONE 'UTC')::date AS day,
                   sum(CAST(e.data ->> 'quantity' AS int)) AS units
            FROM line_events e JOIN order_lines l ON l.id = e.line_id
            WHERE l.sku = :sku AND e.kind = 'cancelled' AND e.at >= :since GROUP BY 1
        )
        SELECT coalesce(o.day, c.day) AS day, o.channel, coalesce(o.units, 0) AS ordered,
               coalesce(c.units, 0) AS cancelled
        FROM ordered o FULL JOIN cancelled c ON false
        ORDER BY 1
        """), {"sku": sku, "since": _midnight(since)})).all()
    days: dict[date, DemandDayOut] = {}
    for r in rows:
        day = days.setdefault(r.day, DemandDayOut(date=r.day, ordered=0, cancelled=0,
                                                  by_channel={}))
        day.cancelled += int(r.cancelled)
        if r.channel is not None:
            day.ordered += int(r.ordered)
            day.by_channel[r.channel] = day.by_channel.get(r.channel, 0) + int(r.ordered)
    return sorted(days.values(), key=lambda d: d.date)


# --- Stored forecasts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    sku: str
    computed_at: datetime
    first_week: date
    history_hash: str
    model: str
    pattern: str
    fallback: bool
    history_weeks: int
    backtest_mae: float | None
    backtest_mase: float | None
    error_sd: float
    weeks: list[dict[str, float]]

    @property
    def means(self) -> list[float]:
        return [w["mean"] for w in self.weeks]


async def _stored(conn: AsyncConnection, skus: Sequence[str]) -> dict[str, Stored]:
    rows = (await conn.execute(sa.text("SELECT * FROM forecasts WHERE sku = ANY(:skus)"),
                               {"skus": list(skus)})).mappings().all()
    return {r["sku"]: Stored(**r) for r in rows}


async def compute(engine: AsyncEngine, skus: Sequence[str], settings: Settings, *,
                  today: date | None = None, only_stale: bool = False,
                  history: dict[str, tuple[float, ...]] | None = None) -> dict[str, Stored]:
    """Forecast `skus` from their history as it is now (`history`, when the caller has
    just read it with `weekly_demand`) and store the forecasts; with `only_stale`, only
    those whose history changed since their stored forecast."""
    from backorders.forecasting import models, runner  # the models load pandas: on use

    first_week = week_of(today or today_utc())
    async with autocommit(engine).connect() as conn:
        if history is None:
            history = await weekly_demand(conn, skus, first_week, settings.forecast_history_weeks)
        stored = await _stored(conn, skus) if only_stale else {}
    hashes = {sku: history_hash(first_week, weekly) for sku, weekly in history.items()}
    todo = [sku for sku in history
            if not only_stale or sku not in stored or stored[sku].history_hash != hashes[sku]]
    results = await runner.forecast_many(
        [models.DemandSeries(sku, history[sku]) for sku in todo],
        settings.forecast_horizon_weeks, settings.forecast_processes)
    now = datetime.now(UTC)
    fresh = {f.key: Stored(
        sku=f.key, computed_at=now, first_week=first_week, history_hash=hashes[f.key],
        model=f.model, pattern=f.pattern, fallback=f.fallback,
        history_weeks=len(history[f.key]), backtest_mae=f.backtest_mae,
        backtest_mase=f.backtest_mase, error_sd=f.error_sd,
        weeks=[{"mean": w.mean, "lo80": w.lo80, "hi80": w.hi80, "lo95": w.lo95,
                "hi95": w.hi95} for w in f.weeks]) for f in results}
    if fresh:
        async def store(conn: AsyncConnection) -> None:
            await conn.execute(sa.text(
                """
                INSERT INTO forecasts (sku, computed_at, first_week, history_hash, model,
                    pattern, fallback, history_weeks, backtest_mae, backtest_mase, error_sd,
                    weeks)
                VALUES (:sku, :computed_at, :first_week, :history_hash, :model, :pattern,
                    :fallback, :history_weeks, :backtest_mae, :backtest_mase, :error_sd,
                    CAST(:weeks AS jsonb))
                ON CONFLICT (sku) DO UPDATE SET
                    computed_at = EXCLUDED.computed_at, first_week = EXCLUDED.first_week,
                    history_hash = EXCLUDED.history_hash, model = EXCLUDED.model,
                    pattern = EXCLUDED.pattern, fallback = EXCLUDED.fallback,
                    history_weeks = EXCLUDED.history_weeks,
                    backtest_mae = EXCLUDED.backtest_mae,
                    backtest_mase = EXCLUDED.backtest_mase, error_sd = EXCLUDED.error_sd,
                    weeks = EXCLUDED.weeks
                """), [{**s.__dict__, "weeks": json.dumps(s.weeks)} for s in fresh.values()])

        await transaction(engine, store)
    if results:
        log.info("forecast %d SKU(s) (%d on the fallback)", len(results),
                 sum(f.fallback for f in results))
    return {**stored, **fresh} if only_stale else fresh


# --- Where each SKU stands, and what to do ------------------------------------------------


@dataclass(frozen=True)
class PlanInputs:
    """What a SKU's plan is made of besides its forecast, as the ledger is now: its
    position (arrivals already shifted by their supplier's likely delay) and lead time."""

    sku: str
    name: str | None
    supplier_id: str | None
    substitutes: tuple[str, ...]
    position: Position
    lead_time: LeadTime


@dataclass(frozen=True)
class Plan:
    inputs: PlanInputs
    projection: Projection
    suggestion: Suggestion
    substitutes: list[SubstituteOut]
    """Substitutes in stock now (empty where the caller reads them fresh later)."""


async def _lead_times(conn: AsyncConnection, supplier_ids: set[str]) -> dict[str, list[int]]:
    """Days from each purchase order's creation to each receipt against it."""
    if not supplier_ids:
        return {}
    rows = (await conn.execute(sa.text(
        """
        SELECT po.supplier_id, r.received_at::date - po.created_at::date AS days
        FROM receipts r JOIN purchase_orders po ON po.po_number = r.purchase_order
        WHERE po.supplier_id = ANY(:ids)
        """), {"ids": sorted(supplier_ids)})).all()
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r.supplier_id, []).append(max(0, int(r.days)))
    return out


def _lead_time(samples: list[int] | None, product_days: int | None,
               settings: Settings) -> LeadTime:
    if samples and len(samples) >= MIN_LEAD_TIME_SAMPLES:
        return LeadTime(statistics.fmean(samples), statistics.pstdev(samples), True)
    days = product_days if product_days is not None else settings.forecast_default_lead_time_days
    return LeadTime(float(days), 0.0, False)


async def plan_inputs(conn: AsyncConnection, skus: Sequence[str],
                      settings: Settings) -> dict[str, PlanInputs]:
    """Each SKU's position and lead time, read set-wise for any number of SKUs."""
    if not skus:
        return {}
    skus = sorted(skus)
    products = (await conn.execute(sa.text(
        """
        SELECT p.sku, p.name, p.lead_time_days, p.substitutes,
               coalesce(p.supplier_id, latest.supplier_id) AS supplier_id,
               coalesce(s.on_hand, 0) AS on_hand, coalesce(s.reserved, 0) AS reserved,
               coalesce(s.backordered, 0) AS waiting
        FROM products p
        LEFT JOIN stock s ON s.sku = p.sku
        LEFT JOIN LATERAL (
            SELECT po.supplier_id FROM purchase_order_lines pl
            JOIN purchase_orders po ON po.po_number = pl.po_number
            WHERE pl.sku = p.sku ORDER BY po.created_at DESC LIMIT 1) latest ON true
        WHERE p.sku = ANY(:skus)
        """), {"skus": skus})).all()
    supply = await open_lines(conn, skus)
    suppliers = {p.supplier_id for p in products if p.supplier_id} | {s.supplier_id
                                                                     for s in supply}
    quantiles = supplier_quantiles(await delay_samples(conn, suppliers),
                                   settings.eta_likely_quantile, settings.eta_latest_quantile)
    lead_samples = await _lead_times(conn, suppliers)
    arrivals: dict[str, list[Arrival]] = {}
    for s in supply:
        delay = quantiles.get(s.supplier_id)
        on = shifted(s.expected_at, s.promised_at, delay.likely) if delay else s.expected_at
        arrivals.setdefault(s.sku, []).append(Arrival(on, int(s.outstanding)))
    lead_times: dict[tuple[str | None, int | None], LeadTime] = {}

    def lead_time(supplier_id: str | None, product_days: int | None) -> LeadTime:
        key = (supplier_id, product_days)
        if key not in lead_times:  # one per supplier, not one per SKU
            lead_times[key] = _lead_time(lead_samples.get(supplier_id) if supplier_id else None,
                                         product_days, settings)
        return lead_times[key]

    return {p.sku: PlanInputs(
        sku=p.sku, name=p.name, supplier_id=p.supplier_id,
        substitutes=tuple(p.substitutes or ()),
        position=Position(int(p.on_hand), int(p.reserved), int(p.waiting),
                          tuple(sorted(arrivals.get(p.sku, ()),
                                       key=lambda a: (a.on, a.quantity)))),
        lead_time=lead_time(p.supplier_id, p.lead_time_days)) for p in products}


def _plan(inputs: PlanInputs, stored: Stored, settings: Settings, today: date,
          horizon_weeks: int | None, offered: list[SubstituteOut]) -> Plan:
    weekly = stored.means if horizon_weeks is None else stored.means[:horizon_weeks]
    return Plan(
        inputs=inputs,
        projection=project(inputs.position, stored.first_week, weekly, today),
        suggestion=suggest(inputs.position, stored.first_week, weekly, stored.error_sd,
                           inputs.lead_time, today, service_level=settings.forecast_service_level,
                           review_weeks=settings.forecast_review_weeks),
        substitutes=offered)


async def plans(conn: AsyncConnection, forecasts: dict[str, Stored], settings: Settings,
                today: date, *, horizon_weeks: int | None = None) -> dict[str, Plan]:
    """Position, projection and suggestion for each forecast SKU, as the ledger is now."""
    inputs = await plan_inputs(conn, list(forecasts), settings)
    offered = await substitutes.in_stock_for(
        conn, {sku: i.substitutes for sku, i in inputs.items()})
    return {sku: _plan(i, forecasts[sku], settings, today, horizon_weeks, offered[sku])
            for sku, i in inputs.items()}


def plan_hash(inputs: PlanInputs, forecast_hash: str, forecast_at: datetime, today: date,
              horizon_weeks: int, settings: Settings) -> str:
    """Everything a stored plan was made from, and the rules that made it: equal hashes,
    equal plans."""
    basis = (inputs, forecast_hash, forecast_at.astimezone(UTC).isoformat(),
             today.isoformat(), horizon_weeks, settings.forecast_service_level,
             settings.forecast_review_weeks)
    digest = _RULES_DIGEST.copy()
    digest.update(repr(basis).encode())
    return digest.hexdigest()


def replenishment_out(plan: Plan) -> ReplenishmentOut:
    s, i = plan.suggestion, plan.inputs
    return ReplenishmentOut(
        sku=i.sku, name=i.name, supplier_id=i.supplier_id,
        lead_time_days=round(i.lead_time.mean_days, 1),
        lead_time_sd_days=round(i.lead_time.sd_days, 1),
        lead_time_measured=i.lead_time.measured,
        available=i.position.available, incoming=i.position.incoming,
        safety_stock=s.safety_stock, reorder_point=s.reorder_point,
        suggested_quantity=s.suggested_quantity, order_by=s.order_by,
        stockout_date=plan.projection.stockout_date,
        predicted_backorder_units=s.backorder_units,
        backorder_units_avoided=s.backorder_units_avoided, substitutes=plan.substitutes)


# --- Reading ----------------------------------------------------------------------------


async def forecast(engine: AsyncEngine, sku: str, settings: Settings, *,
                   today: date | None = None) -> ForecastOut:
    """`GET /forecast/{sku}`: recomputed first when its history changed."""
    today = today or today_utc()
    async with autocommit(engine).connect() as conn:
        history = await weekly_demand(conn, [sku], week_of(today),
                                      settings.forecast_history_weeks)
    if sku not in history:  # it has a history, however short, exactly when it exists
        raise NotFound("unknown_sku", f"no product with SKU {sku!r}", field="sku")
    weekly = history[sku]
    stored = (await compute(engine, [sku], settings, today=today, only_stale=True,
                            history=history))[sku]
    async with autocommit(engine).connect() as conn:
        plan = (await plans(conn, {sku: stored}, settings, today))[sku]
        days = await daily_demand(conn, sku, week_of(today) - timedelta(
            weeks=settings.forecast_history_weeks))
    first_history = stored.first_week - timedelta(weeks=len(weekly))
    return ForecastOut(
        sku=sku, computed_at=stored.computed_at, model=stored.model, pattern=stored.pattern,
        fallback=stored.fallback, history_weeks=stored.history_weeks,
        backtest_mae=stored.backtest_mae, backtest_mase=stored.backtest_mase,
        history=days,
        weekly_history=[DemandWeekOut(week_start=first_history + timedelta(weeks=i),
                                      ordered=units) for i, units in enumerate(weekly)],
        forecast=[ForecastWeekOut(week_start=stored.first_week + timedelta(weeks=i), **w)
                  for i, w in enumerate(stored.weeks)],
        projection=[ProjectedWeekOut(**w.__dict__) for w in plan.projection.weeks],
        stockout_date=plan.projection.stockout_date,
        predicted_backorder_units=plan.projection.backorder_units,
        replenishment=replenishment_out(plan))


async def replenishment(engine: AsyncEngine, settings: Settings, *,
                        horizon_weeks: int | None = None, supplier_id: str | None = None,
                        limit: int = 100, today: date | None = None) -> list[ReplenishmentOut]:
    """SKUs to order, the most predicted backorder units first, from the stored
    forecasts (the schedule keeps them fresh) and the stock and supply as they are now.

    Each SKU's plan is stored with the hash of its inputs: a call reads every SKU's inputs
    set-wise, but projects only those whose inputs changed since (the day, its forecast,
    stock, purchase orders, or its supplier's record), and ranks in SQL. It holds one
    connection at a time, so calls that all store at once cannot starve the pool."""
    horizon = settings.forecast_horizon_weeks if horizon_weeks is None else horizon_weeks
    if horizon > settings.forecast_horizon_weeks:
        raise Invalid("horizon_beyond_forecast",
                      f"horizon_weeks may be at most {settings.forecast_horizon_weeks}, the "
                      "weeks the forecasts cover (FORECAST_HORIZON_WEEKS)", field="horizon_weeks")
    today = today or today_utc()
    async with autocommit(engine).connect() as conn:
        forecast_of = {r.sku: r for r in (await conn.execute(sa.text(
            """
            SELECT f.sku, f.history_hash, f.computed_at, rp.inputs_hash AS stored_hash
            FROM forecasts f JOIN products p ON p.sku = f.sku
            LEFT JOIN replenishment_plans rp ON rp.sku = f.sku AND rp.horizon_weeks = :h
            WHERE NOT p.discontinued
            """), {"h": horizon})).all()}
        skus = sorted(forecast_of)
        inputs = await plan_inputs(conn, skus, settings)
        hashes = {sku: plan_hash(i, forecast_of[sku].history_hash, forecast_of[sku].computed_at,
                                 today, horizon, settings) for sku, i in inputs.items()}
        stale = [sku for sku in skus if forecast_of[sku].stored_hash != hashes[sku]]
        forecasts = await _stored(conn, stale) if stale else {}
    fresh = {sku: _plan(inputs[sku], forecasts[sku], settings, today, horizon, [])
             for sku in stale if sku in forecasts}
    if fresh:
        await _store_plans(engine, fresh, hashes, horizon)
        log.info("replenishment: %d of %d plan(s) recomputed", len(fresh), len(skus))
    async with autocommit(engine).connect() as conn:
        rows = (await conn.execute(sa.text(
            """
            SELECT rp.item FROM replenishment_plans rp
            WHERE rp.horizon_weeks = :h AND rp.sku = ANY(:skus) AND rp.suggested_quantity > 0
              AND (CAST(:supplier AS text) IS NULL OR rp.supplier_id = :supplier)
            ORDER BY rp.predicted_backorder_units DESC, rp.order_by NULLS LAST,
                     rp.sku COLLATE "C"
            LIMIT :limit
            """), {"h": horizon, "skus": skus, "supplier": supplier_id,
                   "limit": limit})).scalars().all()
        offered = await substitutes.in_stock_for(
            conn, {item["sku"]: inputs[item["sku"]].substitutes for item in rows})
    return [ReplenishmentOut(**item, substitutes=offered[item["sku"]]) for item in rows]


async def _store_plans(engine: AsyncEngine, fresh: dict[str, Plan], hashes: dict[str, str],
                       horizon: int) -> None:
    if not fresh:
        return

    async def store(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(
            """
            INSERT INTO replenishment_plans (sku, horizon_weeks, inputs_hash, supplier_id,
                suggested_quantity, predicted_backorder_units, order_by, item)
            VALUES (:sku, :h, :inputs_hash, :supplier_id, :suggested_quantity,
                :predicted_backorder_units, :order_by, CAST(:item AS jsonb))
            ON CONFLICT (sku, horizon_weeks) DO UPDATE SET
                inputs_hash = EXCLUDED.inputs_hash, computed_at = now(),
                supplier_id = EXCLUDED.supplier_id,
                suggested_quantity = EXCLUDED.suggested_quantity,
                predicted_backorder_units = EXCLUDED.predicted_backorder_units,
                order_by = EXCLUDED.order_by, item = EXCLUDED.item
            """), [{
                "sku": sku, "h": horizon, "inputs_hash": hashes[sku],
                "supplier_id": plan.inputs.supplier_id,
                "suggested_quantity": plan.suggestion.suggested_quantity,
                "predicted_backorder_units": plan.suggestion.backorder_units,
                "order_by": plan.suggestion.order_by,
                "item": replenishment_out(plan).model_dump_json(exclude={"substitutes"}),
            } for sku, plan in sorted(fresh.items())])  # one lock order: no deadlock

    await transaction(engine, store)


# --- The scheduled run ------------------------------------------------------------------


async def skus_to_forecast(engine: AsyncEngine) -> list[str]:
    async with autocommit(engine).connect() as conn:
        return list((await conn.execute(sa.text(
            "SELECT sku FROM products WHERE NOT discontinued ORDER BY sku"))).scalars().all())


@dataclass(frozen=True)
class BatchOutcome:
    forecast: int
    fallback: int
    shortages: int


async def refresh(engine: AsyncEngine, skus: Sequence[str], settings: Settings, *,
                  today: date | None = None) -> BatchOutcome:
    """Forecast a batch of SKUs, then tell purchasing of each predicted to stock out
    within its lead time plus `forecast_shortage_horizon_days` (once per cool-down)."""
    today = today or today_utc()
    fresh = await compute(engine, skus, settings, today=today)
    if not fresh:
        return BatchOutcome(0, 0, 0)
    horizon = settings.forecast_horizon_weeks
    async with autocommit(engine).connect() as conn:
        made = await plans(conn, fresh, settings, today, horizon_weeks=horizon)

    async def alert(conn: AsyncConnection) -> int:
        told = 0
        for plan in made.values():
            if await impending_shortage(conn, plan, settings, today):
                told += 1
        return told

    shortages = await transaction(engine, alert)
    # Stored as `GET /replenishment` would make them: its next call projects none again.
    await _store_plans(engine, made, {
        sku: plan_hash(plan.inputs, fresh[sku].history_hash, fresh[sku].computed_at, today,
                       horizon, settings) for sku, plan in made.items()}, horizon)
    return BatchOutcome(len(fresh), sum(s.fallback for s in fresh.values()), shortages)


async def impending_shortage(conn: AsyncConnection, plan: Plan, settings: Settings,
                             today: date) -> bool:
    """The impending-shortage alert rule: a stockout predicted within the lead time plus
    the horizon, with forecast demand going unmet by then. Records the alert when it
    fires (debounced like the other alerts)."""
    i, stockout = plan.inputs, plan.projection.stockout_date
    horizon = today + timedelta(days=round(i.lead_time.mean_days)
                                + settings.forecast_shortage_horizon_days)
    if stockout is None or stockout > horizon:
        return False
    # New demand must go unmet: lines already waiting for supply that is not coming are
    # the shortfall alert's (`services.alerts`), not a prediction.
    if not any(w.short > 0 for w in plan.projection.weeks if w.week_start <= horizon):
        return False
    fired = await cooled_down(conn, i.sku, "impending_shortage",
                              settings.staff_alert_cooldown_hours)
    if fired is None:
        return False
    s = plan.suggestion
    await record_staff_alert(
        conn, settings, Event.IMPENDING_SHORTAGE,
        key=f"impending_shortage:{i.sku}:{fired.isoformat()}", sku=i.sku,
        shortage=ShortageFacts(
            sku=i.sku, product_name=i.name, stockout_date=stockout,
            lead_time_days=round(i.lead_time.mean_days), available=i.position.available,
            incoming_units=i.position.incoming,
            predicted_backorder_units=round(plan.projection.backorder_units),
            suggested_quantity=s.suggested_quantity, order_by=s.order_by,
            reorder_point=s.reorder_point, safety_stock=s.safety_stock,
            supplier_id=i.supplier_id,
            substitutes=", ".join(sub.sku for sub in plan.substitutes) or None))
    log.info("%s: predicted to stock out on %s; purchasing told", i.sku, stockout)
    return True

