"""Projected stock, stockout dates and replenishment suggestions against hand
computations (`backorders.forecasting.projection`)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from backorders.forecasting.projection import (
    Arrival,
    LeadTime,
    Position,
    project,
    safety_stock,
    suggest,
)

MONDAY = date(2026, 3, 2)
TWELVE_WEEKS_OF_70 = [70.0] * 12  # ten a day


def test_ten_a_day_with_a_hundred_on_hand_and_no_supply_runs_out_on_the_eleventh_day():
    p = project(Position(100, 0, 0, ()), MONDAY, TWELVE_WEEKS_OF_70, MONDAY)
    # Ten days use the hundred; the eleventh is the first short.
    assert p.stockout_date == MONDAY + timedelta(days=10)
    assert p.backorder_units == pytest.approx(12 * 70 - 100)
    assert p.weeks[0].projected == pytest.approx(30)
    assert p.weeks[1].short == pytest.approx(40)  # 70 asked, 30 left


def test_a_purchase_order_in_time_prevents_the_stockout_and_a_late_one_only_delays_it():
    in_time = project(Position(100, 0, 0, (Arrival(MONDAY + timedelta(days=8), 900),)),
                      MONDAY, TWELVE_WEEKS_OF_70, MONDAY)
    assert in_time.stockout_date is None and in_time.backorder_units == 0
    late = project(Position(100, 0, 0, (Arrival(MONDAY + timedelta(days=20), 900),)),
                   MONDAY, TWELVE_WEEKS_OF_70, MONDAY)
    assert late.stockout_date == MONDAY + timedelta(days=10)
    assert late.backorder_units == pytest.approx(100)  # days 10-19 go short, then it arrives


def test_reserved_units_and_waiting_lines_come_off_what_is_available():
    p = project(Position(100, 30, 80, ()), MONDAY, TWELVE_WEEKS_OF_70, MONDAY)
    assert p.stockout_date == MONDAY  # lines already wait for more than is free
    assert p.backorder_units == pytest.approx(12 * 70)  # every forecast unit goes short


def test_projection_starts_today_not_at_the_start_of_the_forecast_week():
    thursday = MONDAY + timedelta(days=3)
    p = project(Position(100, 0, 0, ()), MONDAY, TWELVE_WEEKS_OF_70, thursday)
    assert p.weeks[0].demand == pytest.approx(40)  # Thursday to Sunday
    assert p.stockout_date == thursday + timedelta(days=10)


def test_safety_stock_matches_the_hand_computation_with_demand_and_lead_time_variance():
    # z(95%) = 1.6449; L = 2 weeks, sd_L = 1 week, d = 70/week, sd_d = 10/week:
    # 1.6449 * sqrt(2 * 10^2 + 70^2 * 1^2) = 1.6449 * 71.414 = 117.47
    assert safety_stock(0.95, 70, 10, LeadTime(14, 7, True)) == pytest.approx(117.47, abs=0.01)
    # A fixed lead time leaves demand variance alone: 1.6449 * sqrt(2) * 10 = 23.26.
    assert safety_stock(0.95, 70, 10, LeadTime(14, 0, False)) == pytest.approx(23.26, abs=0.01)


def test_the_suggestion_orders_when_the_position_reaches_the_reorder_point():
    lead = LeadTime(14, 0, False)
    s = suggest(Position(300, 0, 0, ()), MONDAY, TWELVE_WEEKS_OF_70, 10, lead, MONDAY,
                service_level=0.95, review_weeks=4)
    ss = 1.6449 * math.sqrt(2) * 10
    assert s.safety_stock == math.ceil(ss)
    assert s.reorder_point == math.ceil(140 + ss)
    # 300 on hand falls to the reorder point (163.3) after 14 days of ten a day.
    assert s.order_by == MONDAY + timedelta(days=14)
    # Up to the reorder point plus four weeks: 140 + 23.3 + 280 - (300 - 140).
    assert s.suggested_quantity == math.ceil(140 + ss + 280 - 160)
    # Arriving 14 days after the order-by date, it covers the shortage from day 30.
    assert s.backorder_units == pytest.approx(12 * 70 - 300)
    assert s.backorder_units_avoided > 0


def test_no_suggestion_when_supply_on_order_covers_the_horizon():
    s = suggest(Position(0, 0, 0, (Arrival(MONDAY, 5000),)), MONDAY, TWELVE_WEEKS_OF_70, 10,
                LeadTime(14, 0, False), MONDAY, service_level=0.95, review_weeks=4)
    assert (s.suggested_quantity, s.order_by, s.backorder_units) == (0, None, 0)


def test_waiting_lines_covered_by_an_arrival_today_are_no_stockout():
    covered = Position(on_hand=0, reserved=0, waiting=5, arrivals=(Arrival(MONDAY, 1000),))
    p = project(covered, MONDAY, [0.0] * 4, MONDAY)
    assert p.stockout_date is None and p.backorder_units == 0
    later = Position(on_hand=0, reserved=0, waiting=5, arrivals=(Arrival(MONDAY + timedelta(days=3), 1000),))
    assert project(later, MONDAY, [0.0] * 4, MONDAY).stockout_date == MONDAY
