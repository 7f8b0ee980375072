"""KPIs against hand counts: a real flow through the workflows, and a ledger written
row by row with known times to pin the definitions and the period's boundaries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.domain.kpis import KPIS
from backorders.services import kpis
from backorders.services.kpis import Period, Scope
from tests.support import make_product, place, receive, wait_settled

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_four_backordered_three_shipped_one_cancelled_is_a_conversion_of_075(api, db):
    await make_product(api, "KPI-1")
    big = await place(api, "K-1", [("KPI-1", 3)], customer="kim")
    small = await place(api, "K-2", [("KPI-1", 1)], customer="lee")
    await receive(api, "KPI-GRN-1", "KPI-1", 3)
    r = await api.post(f"/orders/{small['id']}/cancel", json={"reason": "changed mind"})
    assert r.status_code == 200, r.text
    await wait_settled(db)

    r = await api.get("/kpis")
    assert r.status_code == 200, r.text
    got = r.json()["kpis"]
    conversion = got["backorder_conversion_rate"]
    assert (conversion["value"], conversion["numerator"], conversion["denominator"]) == (0.75, 3, 4)
    assert conversion["target"] == 0.95 and conversion["meets_target"] is False
    assert conversion["definition"] == KPIS["backorder_conversion_rate"].definition
    assert got["cancellation_rate"]["value"] == 0.25
    assert got["fill_rate"]["value"] == 0.0 and got["fill_rate"]["denominator"] == 4
    assert got["backorder_rate"]["value"] == 1.0
    assert got["fulfillment_accuracy"] == {**got["fulfillment_accuracy"], "value": 1.0,
                                           "numerator": 3, "denominator": 3,
                                           "meets_target": True}
    duration = got["average_backorder_duration_days"]
    assert duration["count"] == 1 and duration["meets_target"] is True
    assert got["ageing"]["lines"] == 0
    assert big["customer"]["id"] == "kim"

    scoped = (await api.get("/kpis", params={"customer_id": "kim"})).json()["kpis"]
    assert scoped["backorder_conversion_rate"]["denominator"] == 3
    other = (await api.get("/kpis", params={"sku": "NOT-THIS"})).json()["kpis"]
    assert other["backorder_conversion_rate"] == {
        **other["backorder_conversion_rate"], "value": None, "numerator": 0, "denominator": 0,
        "meets_target": None}


async def test_kpi_requests_name_the_field_they_got_wrong(api):
    r = await api.get("/kpis", params={"from": "2026-12-02", "to": "2026-12-01"})
    assert r.status_code == 422 and r.json()["field"] == "from"
    r = await api.get("/kpis", params={"from": "yesterday"})
    assert r.status_code == 422 and r.json()["field"] == "from"
    r = await api.get("/kpis/series", params={"metric": "happiness"})
    assert r.status_code == 422 and r.json()["field"] == "metric"
    r = await api.get("/kpis/series", params={"metric": "fill_rate", "from": "2020-01-01"})
    assert r.status_code == 422 and "at most" in r.json()["message"]


# --- a ledger with known times ----------------------------------------------------------


@dataclass
class Ledger:
    """Writes orders, lines, allocations, events, dispatches and messages as they would
    be after the fact, at chosen times."""

    engine: AsyncEngine
    skus: set[str] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    orders: int = 0

    async def sql(self, statement: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(statement), params)

    async def line(self, *, sku: str = "L-1", customer: str = "c1", channel: str = "web",
                   quantity: int, from_stock: int = 0, at: datetime = T0,
                   promised: Any = None, waiting: int | None = None) -> uuid.UUID:
        if sku not in self.skus:
            await self.sql("INSERT INTO products (sku) VALUES (:s)", s=sku)
            await self.sql("INSERT INTO stock (sku) VALUES (:s)", s=sku)
            self.skus.add(sku)
        if customer not in self.customers:
            await self.sql("INSERT INTO customers (id) VALUES (:c)", c=customer)
            self.customers.add(customer)
        self.orders += 1
        order_id, line_id = uuid.uuid4(), uuid.uuid4()
        backordered = quantity - from_stock
        await self.sql(
            """INSERT INTO orders (id, channel, order_number, placed_at, customer_id,
                   customer_tier, order_value, request_hash, created_at)
               VALUES (:id, :ch, :n, :at, :c, 'standard', 10, 'h', :at)""",
            id=order_id, ch=channel, n=f"O-{self.orders}", at=at, c=customer)
        await self.sql(
            """INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
                   fulfillable_quantity, initial_backordered, waiting_quantity, status,
                   workflow_id, placed_at, tier_rank, order_value, customer_id, created_at,
                   promised_date)
               VALUES (:id, :o, 1, :sku, :q, 10, :f, :b, :w, 'backordered', 'wf', :at, 3, 10,
                       :c, :at, :p)""",
            id=line_id, o=order_id, sku=sku, q=quantity, f=from_stock, b=backordered,
            w=backordered if waiting is None else waiting, at=at, c=customer, p=promised)
        if from_stock:
            await self.allocation(line_id, from_stock, source="stock", at=at)
        return line_id

    async def allocation(self, line_id: uuid.UUID, quantity: int, *, source: str = "receipt",
                         at: datetime = T0, dispatched: datetime | None = None,
                         cancelled: datetime | None = None) -> uuid.UUID:
        allocation_id = uuid.uuid4()
        status = "dispatched" if dispatched else "cancelled" if cancelled else "allocated"
        await self.sql(
            """INSERT INTO allocations (id, line_id, order_id, sku, quantity, source, status,
                   created_at, dispatched_at, cancelled_at)
               SELECT :id, l.id, l.order_id, l.sku, :q, :src, :st, :at, :d, :x
               FROM order_lines l WHERE l.id = :line""",
            id=allocation_id, line=line_id, q=quantity, src=source, st=status, at=at,
            d=dispatched, x=cancelled)
        await self.sql(
            """UPDATE order_lines SET waiting_quantity = waiting_quantity - :w,
                   shipped_quantity = shipped_quantity + :s,
                   cancelled_quantity = cancelled_quantity + :c WHERE id = :line""",
            line=line_id, w=0 if source == "stock" else quantity,
            s=quantity if dispatched else 0, c=quantity if cancelled else 0)
        if dispatched:
            await self.dispatch_movement(allocation_id, quantity, dispatched)
        return allocation_id

    async def dispatch_movement(self, allocation_id: uuid.UUID | str, quantity: int,
                                at: datetime, sku: str = "L-1") -> None:
        await self.sql(
            """INSERT INTO inventory_movements (sku, delta, on_hand_after, reason, reference,
                   created_at) VALUES (:sku, :d, 0, 'dispatch', :ref, :at)""",
            sku=sku, d=-quantity, ref=str(allocation_id), at=at)

    async def cancel_waiting(self, line_id: uuid.UUID, waiting: int, at: datetime) -> None:
        await self.sql(
            """INSERT INTO line_events (line_id, kind, message, data, at)
               VALUES (:l, 'cancelled', 'x', CAST(:d AS jsonb), :at)""",
            l=line_id, d=f'{{"quantity": {waiting}, "waiting": {waiting}}}', at=at)
        await self.sql(
            """UPDATE order_lines SET waiting_quantity = waiting_quantity - :w,
                   cancelled_quantity = cancelled_quantity + :w WHERE id = :l""",
            l=line_id, w=waiting)

    async def message(self, *, customer: str = "c1", status: str = "sent", at: datetime = T0,
                      event: str = "backordered", key: str | None = None,
                      line_id: uuid.UUID | None = None, sku: str | None = "L-1") -> None:
        await self.sql(
            """INSERT INTO notifications (idempotency_key, event, audience, customer_id,
                   line_id, sku, status, event_at, sent_at, failed_at)
               VALUES (:k, :e, 'customer', :c, :l, :sku, :st, :at,
                       CASE WHEN :st = 'sent' THEN CAST(:at AS timestamptz) END,
                       CASE WHEN :st = 'failed' THEN CAST(:at AS timestamptz) END)""",
            k=key or str(uuid.uuid4()), e=event, c=customer, l=line_id, sku=sku, st=status,
            at=at)


@pytest.fixture
async def ledger(db) -> Ledger:
    return Ledger(db)


async def figures(engine: AsyncEngine, start: datetime, end: datetime,
                  **scope: str) -> dict[str, Any]:
    result = await kpis.kpis(engine, Period(start, end), Scope(**scope), now=end)
    return result["kpis"]


async def test_a_unit_resolves_in_the_period_its_dispatch_or_cancellation_falls_in(ledger, db):
    line = await ledger.line(quantity=5)
    await ledger.allocation(line, 2, at=T0, dispatched=T0 + DAY)            # in
    await ledger.allocation(line, 1, at=T0, cancelled=T0 + 3 * DAY)          # at `end`: out
    await ledger.cancel_waiting(line, 2, at=T0 + 2 * DAY - timedelta(seconds=1))  # in
    got = await figures(db, T0 + DAY, T0 + 3 * DAY)
    assert got["backorder_conversion_rate"]["numerator"] == 2
    assert got["backorder_conversion_rate"]["denominator"] == 4
    assert got["cancellation_rate"]["value"] == 0.5
    before = await figures(db, T0, T0 + DAY)                                 # `end` excluded
    assert before["backorder_conversion_rate"]["denominator"] == 0
    assert before["backorder_conversion_rate"]["value"] is None


async def test_units_from_stock_are_not_backorders_that_resolved(ledger, db):
    line = await ledger.line(quantity=3, from_stock=2)
    await ledger.sql("UPDATE allocations SET status = 'dispatched', dispatched_at = :d",
                     d=T0 + DAY)
    await ledger.allocation(line, 1, dispatched=T0 + 2 * DAY)
    got = await figures(db, T0, T0 + 10 * DAY)
    assert got["backorder_conversion_rate"]["denominator"] == 1
    assert got["fill_rate"]["numerator"] == 2 and got["fill_rate"]["denominator"] == 3


async def test_backorder_duration_runs_to_the_last_waiting_unit_dispatched(ledger, db):
    one = await ledger.line(quantity=2)
    await ledger.allocation(one, 1, dispatched=T0 + 2 * DAY)
    await ledger.allocation(one, 1, dispatched=T0 + 4 * DAY)                 # 4 days
    two = await ledger.line(quantity=1, at=T0 + DAY)
    await ledger.allocation(two, 1, dispatched=T0 + 11 * DAY)                # 10 days
    unfinished = await ledger.line(quantity=2)
    await ledger.allocation(unfinished, 1, dispatched=T0 + 3 * DAY)          # 1 still waits
    in_flight = await ledger.line(quantity=1)
    await ledger.allocation(in_flight, 1)                                    # not shipped yet
    got = (await figures(db, T0, T0 + 20 * DAY))["average_backorder_duration_days"]
    assert (got["count"], got["value"], got["p50"], got["max"]) == (2, 7.0, 7.0, 10.0)
    assert got["p90"] == pytest.approx(9.4)
    assert got["meets_target"] is False  # a mean of 7 days is not under 7
    later = (await figures(db, T0 + 5 * DAY, T0 + 20 * DAY))["average_backorder_duration_days"]
    assert later["count"] == 1 and later["value"] == 10.0


async def test_fulfillment_accuracy_notices_a_double_shipment_and_one_without_allocation(
        ledger, db):
    line = await ledger.line(quantity=4)
    first = await ledger.allocation(line, 2, dispatched=T0 + DAY)
    await ledger.allocation(line, 2, dispatched=T0 + DAY)
    period = (T0, T0 + 5 * DAY)
    assert (await figures(db, *period))["fulfillment_accuracy"]["value"] == 1.0

    await ledger.dispatch_movement(first, 2, T0 + 2 * DAY)                   # shipped twice
    got = (await figures(db, *period))["fulfillment_accuracy"]
    assert (got["numerator"], got["denominator"], got["meets_target"]) == (2, 6, False)

    await ledger.dispatch_movement(uuid.uuid4(), 1, T0 + 2 * DAY)             # no allocation
    got = (await figures(db, *period))["fulfillment_accuracy"]
    assert (got["numerator"], got["denominator"]) == (2, 7)


async def test_delivery_rate_counts_sent_and_failed_customer_messages_only(ledger, db):
    for status in ("sent", "sent", "sent", "failed", "suppressed", "digested", "queued"):
        await ledger.message(status=status, at=T0 + DAY)
    got = (await figures(db, T0, T0 + 2 * DAY))["notification_delivery_rate"]
    assert (got["numerator"], got["denominator"], got["value"]) == (3, 4, 0.75)


async def test_time_to_alert_runs_from_the_allocation_to_its_message(ledger, db):
    line = await ledger.line(quantity=3)
    for seconds in (30, 60, 600):
        allocation = await ledger.allocation(line, 1, at=T0 + DAY)
        await ledger.message(event="allocated", key=f"{line}:allocated:{allocation}",
                             line_id=line, at=T0 + DAY + timedelta(seconds=seconds))
    got = (await figures(db, T0, T0 + 3 * DAY))["time_to_alert_seconds"]
    assert (got["count"], got["p50"], got["max"]) == (3, 60.0, 600.0)
    assert got["p95"] == pytest.approx(546.0)
    assert got["meets_target"] is False and got["judged_on"] == "p95"


async def test_opt_out_rate_is_customers_who_left_over_customers_messaged(ledger, db):
    for customer in ("a", "b", "c", "d"):
        await ledger.line(quantity=1, customer=customer)
        await ledger.message(customer=customer, at=T0 + DAY)
    for channel in ("email", "sms"):  # one customer leaving two channels counts once
        await ledger.sql("INSERT INTO opt_outs (customer_id, channel, source, at) "
                         "VALUES ('a', :ch, 'link', :at)", ch=channel, at=T0 + DAY)
    await ledger.sql("INSERT INTO opt_outs (customer_id, channel, source, at) "
                     "VALUES ('b', 'email', 'link', :at)", at=T0 + 5 * DAY)  # after the period
    got = (await figures(db, T0, T0 + 2 * DAY))["opt_out_rate"]
    assert (got["numerator"], got["denominator"], got["value"]) == (1, 4, 0.25)
    assert got["meets_target"] is False


async def test_opting_out_records_when_a_customer_left_a_channel_not_their_sign_up_choices(
        api, db):
    r = await api.put("/customers/oli/preferences", json={"opted_out": ["sms"]})
    assert r.status_code == 200, r.text
    r = await api.put("/customers/oli/preferences", json={"opted_out": ["sms", "email"]})
    assert r.status_code == 200, r.text
    async with db.connect() as conn:
        left = (await conn.execute(sa.text(
            "SELECT channel, source FROM opt_outs WHERE customer_id = 'oli' ORDER BY id"))).all()
    # The first preferences (a shop syncing its sign-up) opted out of nothing we sent.
    assert [tuple(r) for r in left] == [("email", "preferences")]


async def test_sla_breaches_are_lines_past_their_promise_with_units_outstanding(ledger, db):
    today = (T0 + 10 * DAY).date()
    late = await ledger.line(quantity=2, customer="gold-1", promised=today - DAY)
    await ledger.allocation(late, 1, dispatched=T0 + DAY)                    # 1 still owed
    await ledger.line(quantity=1, customer="gold-1", promised=today - 2 * DAY)
    done = await ledger.line(quantity=1, customer="other", promised=today - DAY)
    await ledger.allocation(done, 1, dispatched=T0 + DAY)
    await ledger.line(quantity=1, customer="other", promised=today)          # due today: not yet
    got = (await figures(db, T0, T0 + 10 * DAY))["sla_breaches"]
    assert got["value"] == 2 and got["meets_target"] is False
    assert got["by_customer"] == [{"customer_id": "gold-1", "tier": "standard", "lines": 2,
                                   "units": 2, "oldest_promised_date": str(today - 2 * DAY)}]


async def test_ageing_buckets_waiting_lines_by_whole_days(ledger, db):
    now = T0 + 40 * DAY
    for days, quantity in ((0, 1), (2, 1), (3, 2), (7, 1), (8, 1), (30, 4), (31, 5)):
        await ledger.line(quantity=quantity, at=now - days * DAY - timedelta(hours=1))
    async with db.connect() as conn:
        got = await kpis.ageing(conn, Scope(), now)
    assert [(b["bucket"], b["lines"], b["units"]) for b in got["buckets"]] == [
        ("0-2", 2, 2), ("3-7", 2, 3), ("8-14", 1, 1), ("15-30", 1, 4), (">30", 1, 5)]


async def test_a_series_has_every_bucket_and_agrees_with_the_period_figure(ledger, db):
    line = await ledger.line(quantity=4)
    await ledger.allocation(line, 1, dispatched=T0 + DAY)
    await ledger.allocation(line, 2, dispatched=T0 + 3 * DAY)
    await ledger.cancel_waiting(line, 1, T0 + 3 * DAY)
    got = await kpis.series(db, "backorder_conversion_rate", "day",
                            Period(T0, T0 + 4 * DAY), Scope())
    assert [(p["start"], p["value"]) for p in got["points"]] == [
        ("2026-11-02", None), ("2026-11-03", 1.0), ("2026-11-04", None),
        ("2026-11-05", 0.6667), ("2026-11-06", None)]  # the period ends 11-06 09:00
    whole = (await figures(db, T0, T0 + 4 * DAY))["backorder_conversion_rate"]
    assert sum(p["numerator"] for p in got["points"]) == whole["numerator"] == 3
    assert sum(p["denominator"] for p in got["points"]) == whole["denominator"] == 4
    fulfilled = await kpis.series(db, "backorders_fulfilled", "week",
                                  Period(T0, T0 + 4 * DAY), Scope())
    assert [p["value"] for p in fulfilled["points"]] == [3]


async def test_a_closed_periods_durations_do_not_change_when_a_line_settles_later(ledger, db):
    line = await ledger.line(quantity=3, from_stock=1)
    await ledger.allocation(line, 2, dispatched=T0 + 2 * DAY)  # backordered units shipped
    first = await figures(db, T0, T0 + 3 * DAY)
    assert first["average_backorder_duration_days"]["count"] == 1
    assert first["lead_time_days"]["count"] == 0  # its stock unit has not shipped yet
    await ledger.sql("UPDATE allocations SET status = 'dispatched', dispatched_at = :d "
                     "WHERE source = 'stock'", d=T0 + 10 * DAY)
    again = await figures(db, T0, T0 + 3 * DAY)
    assert again["average_backorder_duration_days"] == first["average_backorder_duration_days"]
    assert again["lead_time_days"]["count"] == 0  # settled on day 10, counted then
    later = await figures(db, T0 + 3 * DAY, T0 + 11 * DAY)
    assert later["lead_time_days"]["count"] == 1 and later["lead_time_days"]["value"] == 10.0


async def test_a_line_whose_waiting_units_were_partly_cancelled_has_no_backorder_duration(
        ledger, db):
    line = await ledger.line(quantity=2)
    await ledger.allocation(line, 1, dispatched=T0 + DAY)
    await ledger.cancel_waiting(line, 1, T0 + 2 * DAY)
    got = await figures(db, T0, T0 + 5 * DAY)
    assert got["average_backorder_duration_days"]["count"] == 0
    assert got["lead_time_days"]["count"] == 1


async def test_time_to_alert_leaves_out_messages_the_customers_quiet_hours_held(ledger, db):
    line = await ledger.line(quantity=2)
    for seconds, held in ((20, False), (9000, True)):
        allocation = await ledger.allocation(line, 1, at=T0 + DAY)
        await ledger.message(event="allocated", key=f"{line}:allocated:{allocation}",
                             line_id=line, at=T0 + DAY + timedelta(seconds=seconds))
        if held:
            await ledger.sql("UPDATE notifications SET send_after = sent_at "
                             "WHERE idempotency_key = :k", k=f"{line}:allocated:{allocation}")
    got = (await figures(db, T0, T0 + 3 * DAY))["time_to_alert_seconds"]
    assert (got["count"], got["max"]) == (1, 20.0)


async def test_bounds_out_of_range_are_refused_naming_the_field(api):
    for params, named in (({"to": "9999-12-31"}, "to"), ({"to": "0001-01-10"}, "to"),
                          ({"from": "0001-01-01"}, "from")):
        r = await api.get("/kpis", params=params)
        assert (r.status_code, r.json()["field"]) == (422, named), params
    r = await api.get("/kpis/series", params={"metric": "fill_rate", "to": "9999-12-31"})
    assert r.status_code == 422
