"""Projected stock, stockouts and replenishment: the one place for these rules. Pure code
on plain numbers, so every rule is tested against a hand computation.

Stock is projected day by day from today: what is available now (on hand, less what is
reserved and what waiting lines already ask for, so it may start below zero), plus each
open purchase order line on the day it is likely to arrive, less the forecast demand
(each week's forecast spread evenly over its days). A day below zero is short: the
demand of that day that stock cannot meet becomes new backorders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist


@dataclass(frozen=True)
class Arrival:
    on: date
    quantity: int


@dataclass(frozen=True)
class Position:
    """Where a SKU stands today."""

    on_hand: int
    reserved: int
    waiting: int
    """Units waiting lines ask for."""
    arrivals: tuple[Arrival, ...]
    """Open purchase order lines, by the day each is likely to arrive."""

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.waiting

    @property
    def incoming(self) -> int:
        return sum(a.quantity for a in self.arrivals)


@dataclass(frozen=True)
class WeekProjection:
    week_start: date
    demand: float
    arriving: int
    projected: float
    """Available at the end of the week (below zero: short)."""
    short: float
    """New backorder units this week: demand that stock could not meet."""


@dataclass(frozen=True)
class Projection:
    weeks: tuple[WeekProjection, ...]
    stockout_date: date | None
    """The first day projected short after that day's arrivals: today when lines already
    wait for more than is free and nothing arriving today covers them; None when no day
    within the horizon is."""
    backorder_units: float
    """New backorder units over the horizon if nothing is done."""


def daily_demand(first_week: date, weekly: Sequence[float], day: date) -> float:
    """The forecast for one day: its week's forecast spread over seven days."""
    week = (day - first_week).days // 7
    return weekly[week] / 7 if 0 <= week < len(weekly) else 0.0


def project(position: Position, first_week: date, weekly: Sequence[float],
            today: date, extra: Sequence[Arrival] = ()) -> Projection:
    """Project from `today` to the end of the forecast (`weekly`, from `first_week`)."""
    arrivals: dict[date, int] = {}
    for a in (*position.arrivals, *extra):
        on = max(a.on, today)
        arrivals[on] = arrivals.get(on, 0) + a.quantity
    end = first_week + timedelta(weeks=len(weekly))
    available = float(position.available)
    stockout = None
    weeks: list[WeekProjection] = []
    total_short = 0.0
    day = today
    while day < end:
        week_start = day - timedelta(days=day.weekday())
        demand = arriving = 0.0
        short = 0.0
        while day < end and day < week_start + timedelta(days=7):
            arriving += arrivals.get(day, 0)
            available += arrivals.get(day, 0)
            d = daily_demand(first_week, weekly, day)
            covered = min(d, max(available, 0.0))
            short += d - covered
            available -= d
            demand += d
            if stockout is None and available < -1e-9:
                stockout = day
            day += timedelta(days=1)
        total_short += short
        weeks.append(WeekProjection(week_start, round(demand, 2), int(arriving),
                                    round(available, 2), round(short, 2)))
    return Projection(tuple(weeks), stockout, round(total_short, 2))


@dataclass(frozen=True)
class LeadTime:
    mean_days: float
    sd_days: float
    measured: bool
    """From the supplier's own receipts; otherwise the product's or the default lead time."""


def safety_stock(service_level: float, weekly_mean: float, weekly_error_sd: float,
                 lead_time: LeadTime) -> float:
    """Safety stock against both demand and lead-time variability:
    z * sqrt(L * sd_d^2 + d^2 * sd_L^2), with L and sd_L in weeks."""
    z = NormalDist().inv_cdf(service_level)
    weeks = lead_time.mean_days / 7
    sd_weeks = lead_time.sd_days / 7
    return max(0.0, z * math.sqrt(weeks * weekly_error_sd ** 2 + weekly_mean ** 2 * sd_weeks ** 2))


@dataclass(frozen=True)
class Suggestion:
    safety_stock: int
    reorder_point: int
    suggested_quantity: int
    order_by: date | None
    """When the inventory position reaches the reorder point (today if it already has);
    None when it does not within the horizon."""
    backorder_units: float
    """New backorder units over the horizon if nothing is done."""
    backorder_units_avoided: float
    """Of those, the units an order of `suggested_quantity` placed on `order_by` avoids."""


def suggest(position: Position, first_week: date, weekly: Sequence[float],
            weekly_error_sd: float, lead_time: LeadTime, today: date, *,
            service_level: float, review_weeks: float) -> Suggestion:
    """A reorder-point suggestion: order when the inventory position (available plus
    what is on order) reaches the demand over the lead time plus safety stock, enough to
    bring it up to that point plus `review_weeks` of demand."""
    ahead = [w for i, w in enumerate(weekly)
             if first_week + timedelta(weeks=i + 1) > today] or [0.0]
    weekly_mean = sum(ahead) / len(ahead)
    ss = safety_stock(service_level, weekly_mean, weekly_error_sd, lead_time)
    rop = weekly_mean * lead_time.mean_days / 7 + ss
    base = project(position, first_week, weekly, today)
    end = first_week + timedelta(weeks=len(weekly))
    ip = float(position.available + position.incoming)
    order_by = None
    day = today
    while day < end:
        if ip <= rop:
            order_by = day
            break
        ip -= daily_demand(first_week, weekly, day)
        day += timedelta(days=1)
    quantity = 0
    avoided = 0.0
    if order_by is not None:
        quantity = max(0, math.ceil(rop + weekly_mean * review_weeks - ip))
        if quantity:
            arrives = order_by + timedelta(days=round(lead_time.mean_days))
            after = project(position, first_week, weekly, today,
                            extra=[Arrival(arrives, quantity)])
            avoided = round(base.backorder_units - after.backorder_units, 2)
    return Suggestion(safety_stock=math.ceil(ss), reorder_point=math.ceil(rop),
                      suggested_quantity=quantity, order_by=order_by if quantity else None,
                      backorder_units=base.backorder_units, backorder_units_avoided=avoided)
