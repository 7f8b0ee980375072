"""Forecasts from the order ledger as it is now: stockout dates from known histories,
supply that arrives in time or late, replenishment suggestions, substitutes, the
impending-shortage alert, and the scheduled run as a workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from backorders.contracts.forecast import ForecastRun
from backorders.forecasting.models import MIN_HISTORY_WEEKS
from backorders.services import forecasts
from backorders.services.forecasts import today_utc
from tests.support import make_product, place, receive, rows, scalar, start_worker
from workflows.forecast import ForecastWorkflow

pytestmark = pytest.mark.usefixtures("one_utc_day")


def day(offset: int) -> str:
    return (today_utc() + timedelta(days=offset)).isoformat()


async def seed_demand(db, sku: str, per_day: int, weeks: int, *, channel: str = "web") -> None:
    """`per_day` units of `sku` ordered (and shipped) every day for `weeks` whole weeks
    before this one: a history as the ledger keeps it, without running the lines."""
    today = today_utc()
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(weeks=weeks)
    orders, lines = [], []
    for i in range((monday - start).days):
        placed = datetime.combine(start + timedelta(days=i), datetime.min.time(), UTC) + \
            timedelta(hours=12)
        order_id = uuid.uuid4()
        orders.append({"id": order_id, "channel": channel, "number": f"H-{sku}-{uuid.uuid4().hex[:12]}",
                       "placed": placed, "value": per_day * 10})
        lines.append({"id": uuid.uuid4(), "order_id": order_id, "sku": sku, "q": per_day,
                      "placed": placed, "wf": f"line-hist-{uuid.uuid4()}", "value": per_day * 10})
    async with db.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO customers (id) VALUES ('hist') ON CONFLICT DO NOTHING"))
        await conn.execute(sa.text(
            """
            INSERT INTO orders (id, channel, order_number, placed_at, customer_id,
                                customer_tier, order_value, request_hash)
            VALUES (:id, :channel, :number, :placed, 'hist', 'standard', :value, 'seeded')
            """), orders)
        await conn.execute(sa.text(
            """
            INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
                fulfillable_quantity, initial_backordered, waiting_quantity, shipped_quantity,
                status, workflow_id, placed_at, tier_rank, order_value, customer_id)
            VALUES (:id, :order_id, 1, :sku, :q, 10, :q, 0, 0, :q, 'dispatched', :wf,
                    :placed, 3, :value, 'hist')
            """), lines)


async def put_po(api, number: str, supplier: str, sku: str, quantity: int, offset: int) -> None:
    r = await api.put(f"/purchase-orders/{number}", json={
        "supplier": {"id": supplier}, "lines": [
            {"sku": sku, "quantity": quantity, "expected_at": day(offset)}]})
    assert r.status_code in (200, 201), r.text


async def get_forecast(api, sku: str) -> dict[str, Any]:
    r = await api.get(f"/forecast/{sku}")
    assert r.status_code == 200, r.text
    return r.json()


WEEKS = MIN_HISTORY_WEEKS + 4


async def test_ten_a_day_with_a_hundred_on_hand_and_no_supply_stocks_out_in_about_ten_days(
        api, db):
    await make_product(api, "FC-1", on_hand=100)
    await seed_demand(db, "FC-1", 10, WEEKS)
    f = await get_forecast(api, "FC-1")
    assert not f["fallback"] and f["model"] != "fallback"
    assert f["history_weeks"] == WEEKS
    assert all(abs(w["mean"] - 70) < 3 for w in f["forecast"])
    assert all(w["lo95"] <= w["lo80"] <= w["mean"] <= w["hi80"] <= w["hi95"]
               for w in f["forecast"])
    stockout = datetime.fromisoformat(f["stockout_date"]).date()
    assert 9 <= (stockout - today_utc()).days <= 11
    assert f["predicted_backorder_units"] > 0
    # The history as ordered, per day and channel.
    assert f["history"][-1]["ordered"] == 10 and f["history"][-1]["by_channel"] == {"web": 10}
    assert [w["ordered"] for w in f["weekly_history"]] == [70.0] * WEEKS
    plan = f["replenishment"]
    assert plan["suggested_quantity"] > 0 and plan["order_by"] == day(0)
    assert plan["lead_time_days"] == 14 and not plan["lead_time_measured"]


async def test_a_purchase_order_arriving_in_time_means_no_stockout(api, db):
    await make_product(api, "FC-2", on_hand=100)
    await seed_demand(db, "FC-2", 10, WEEKS)
    await put_po(api, "PO-FC-2", "prompt", "FC-2", 1000, 5)
    f = await get_forecast(api, "FC-2")
    assert f["stockout_date"] is None
    assert f["projection"][0]["arriving"] + f["projection"][1]["arriving"] == 1000


async def test_a_late_supplier_moves_the_stockout_date(api, db):
    # The supplier delivered 14 days after its promise, twice.
    await make_product(api, "OTHER")
    for n in (1, 2):
        await put_po(api, f"PO-OLD-{n}", "slowco", "OTHER", 5, -14)
        await receive(api, f"GR-OLD-{n}", "OTHER", 5, purchase_order=f"PO-OLD-{n}")
    await make_product(api, "FC-3", on_hand=100)
    await seed_demand(db, "FC-3", 10, WEEKS)
    await put_po(api, "PO-FC-3", "slowco", "FC-3", 1000, 5)
    # Promised in five days, likely in nineteen: the hundred runs out on day ten.
    f = await get_forecast(api, "FC-3")
    stockout = datetime.fromisoformat(f["stockout_date"]).date()
    assert 9 <= (stockout - today_utc()).days <= 11
    assert sum(w["arriving"] for w in f["projection"]) == 1000


async def test_a_forecast_is_recomputed_when_its_history_changes_and_only_then(api, db):
    await make_product(api, "FC-4", on_hand=10)
    await seed_demand(db, "FC-4", 2, WEEKS)
    first = await get_forecast(api, "FC-4")
    again = await get_forecast(api, "FC-4")
    assert again["computed_at"] == first["computed_at"]
    await seed_demand(db, "FC-4", 5, 3)  # more demand in the last three weeks
    changed = await get_forecast(api, "FC-4")
    assert changed["computed_at"] != first["computed_at"]
    assert changed["forecast"][0]["mean"] > first["forecast"][0]["mean"]


async def test_a_sku_with_little_history_gets_a_flagged_conservative_fallback(api, db):
    await make_product(api, "FC-NEW", on_hand=5)
    await seed_demand(db, "FC-NEW", 3, 4)
    f = await get_forecast(api, "FC-NEW")
    assert f["fallback"] and f["model"] == "fallback"
    assert f["history_weeks"] == 4 and f["backtest_mae"] is None
    assert all(w["mean"] >= 21 - 1e-6 and w["hi95"] >= w["mean"] for w in f["forecast"])


async def test_cancellations_before_shipment_are_counted_beside_what_was_ordered(api, db):
    await make_product(api, "FC-C")
    r = await api.post("/orders", json={
        "channel": "web", "order_number": "C-1", "customer": {"id": "c-1"},
        "lines": [{"sku": "FC-C", "quantity": 4, "unit_price": "3.00"}]})
    assert r.status_code == 201, r.text
    r = await api.post(f"/orders/{r.json()['id']}/cancel", json={"reason": "changed mind"})
    assert r.status_code == 200, r.text
    f = await get_forecast(api, "FC-C")
    today = [d for d in f["history"] if d["date"] == day(0)]
    assert sum(d["ordered"] for d in today) == 4 and sum(d["cancelled"] for d in today) == 4


async def test_substitutes_with_stock_are_suggested_for_a_sku_predicted_short(api, db):
    await make_product(api, "SUB-A", on_hand=50)
    await make_product(api, "SUB-B")  # none on hand: not suggested
    await make_product(api, "FC-5", on_hand=10, substitutes=["SUB-A", "SUB-B", "SUB-NONE"])
    await seed_demand(db, "FC-5", 5, WEEKS)
    f = await get_forecast(api, "FC-5")
    assert f["stockout_date"] is not None
    assert f["replenishment"]["substitutes"] == [{"sku": "SUB-A", "name": None, "available": 50}]
    r = await api.put("/products/FC-6", json={"substitutes": ["FC-6"]})
    assert r.status_code == 422 and "substitute" in r.text


async def test_replenishment_lists_what_to_order_most_predicted_backorders_first(
        api, db, settings):
    for sku, per_day, supplier in (("R-SMALL", 1, "acme"), ("R-BIG", 10, "acme"),
                                   ("R-OTHER", 5, "zenith")):
        await make_product(api, sku, supplier_id=supplier, lead_time_days=7)
        await seed_demand(db, sku, per_day, WEEKS)
    await make_product(api, "R-COVERED", on_hand=100_000)
    await seed_demand(db, "R-COVERED", 1, WEEKS)
    await forecasts.compute(db, ["R-SMALL", "R-BIG", "R-OTHER", "R-COVERED"], settings)
    r = await api.get("/replenishment")
    assert r.status_code == 200, r.text
    items = r.json()
    assert [i["sku"] for i in items] == ["R-BIG", "R-OTHER", "R-SMALL"]
    assert all(i["suggested_quantity"] > 0 and i["reorder_point"] >= i["safety_stock"]
               for i in items)
    acme = (await api.get("/replenishment", params={"supplier_id": "acme"})).json()
    assert [i["sku"] for i in acme] == ["R-BIG", "R-SMALL"]
    assert acme[0]["supplier_id"] == "acme" and acme[0]["lead_time_days"] == 7
    one_week = (await api.get("/replenishment", params={"horizon_weeks": 1})).json()
    assert one_week[0]["predicted_backorder_units"] < items[0]["predicted_backorder_units"]
    assert (await api.get("/replenishment", params={"horizon_weeks": 0})).status_code == 422


async def test_replenishment_projects_again_only_the_skus_whose_inputs_changed(
        api, db, settings, monkeypatch):
    for sku, per_day, supplier in (("RC-A", 5, "acme"), ("RC-B", 5, "acme"),
                                   ("RC-C", 5, "zenith")):
        await make_product(api, sku, supplier_id=supplier, lead_time_days=7)
        await seed_demand(db, sku, per_day, WEEKS)
    await forecasts.compute(db, ["RC-A", "RC-B", "RC-C"], settings)
    projected: list[str] = []
    plan = forecasts._plan

    def counting(inputs, *args, **kwargs):
        projected.append(inputs.sku)
        return plan(inputs, *args, **kwargs)

    monkeypatch.setattr(forecasts, "_plan", counting)

    async def listed() -> dict[str, dict[str, Any]]:
        r = await api.get("/replenishment")
        assert r.status_code == 200, r.text
        return {i["sku"]: i for i in r.json()}

    first = await listed()
    assert sorted(projected) == ["RC-A", "RC-B", "RC-C"] and first["RC-A"]["available"] == 0
    projected.clear()
    assert await listed() == first and projected == []  # nothing changed: nothing projected

    r = await api.put("/inventory/RC-A", json={"on_hand": 40})  # a count
    assert r.status_code == 200, r.text
    after_count = await listed()
    assert projected == ["RC-A"] and after_count["RC-A"]["available"] == 40
    assert after_count["RC-A"]["suggested_quantity"] < first["RC-A"]["suggested_quantity"]
    projected.clear()

    await put_po(api, "PO-RC-C", "zenith", "RC-C", 30, 3)  # supply on the way
    after_po = await listed()
    assert projected == ["RC-C"] and after_po["RC-C"]["incoming"] == 30
    projected.clear()

    one_week = (await api.get("/replenishment", params={"horizon_weeks": 1})).json()
    assert sorted(projected) == ["RC-A", "RC-B", "RC-C"]  # each horizon is its own plan
    assert {i["sku"] for i in one_week} <= {"RC-A", "RC-B", "RC-C"}
    projected.clear()
    r = await api.put("/products/RC-B", json={"backorder": {"discontinued": True}})
    assert r.status_code == 200, r.text
    assert "RC-B" not in await listed() and projected == []


async def test_the_forecast_run_leaves_replenishment_nothing_to_project(api, db, settings,
                                                                        monkeypatch):
    for sku in ("RW-A", "RW-B"):
        await make_product(api, sku, supplier_id="acme", lead_time_days=7)
        await seed_demand(db, sku, 4, WEEKS)
    await forecasts.refresh(db, ["RW-A", "RW-B"], settings)
    projected: list[str] = []
    plan = forecasts._plan
    monkeypatch.setattr(forecasts, "_plan",
                        lambda inputs, *a, **k: projected.append(inputs.sku) or plan(inputs, *a, **k))
    r = await api.get("/replenishment")
    assert r.status_code == 200, r.text
    assert {i["sku"] for i in r.json()} == {"RW-A", "RW-B"} and projected == []


async def test_forecast_errors_name_the_sku(api):
    r = await api.get("/forecast/NOPE")
    assert r.status_code == 404 and r.json()["field"] == "sku"
    assert (await api.get("/forecast/bad%20sku")).status_code == 422


async def test_an_impending_shortage_alerts_purchasing_once(api, db, settings):
    await make_product(api, "FC-ALERT", on_hand=20, lead_time_days=14)
    await seed_demand(db, "FC-ALERT", 10, WEEKS)
    first = await forecasts.refresh(db, ["FC-ALERT"], settings)
    again = await forecasts.refresh(db, ["FC-ALERT"], settings)
    assert (first.shortages, again.shortages) == (1, 0)
    sent = await rows(db, "SELECT audience, facts FROM notifications "
                          "WHERE event = 'impending_shortage'")
    assert len(sent) == len(settings.staff_purchasing)
    assert sent[0].audience == "staff"
    assert sent[0].facts["shortage"]["sku"] == "FC-ALERT"
    assert sent[0].facts["shortage"]["suggested_quantity"] > 0


async def test_no_alert_when_the_stockout_is_beyond_lead_time_and_horizon(api, db, settings):
    await make_product(api, "FC-CALM", on_hand=2000, lead_time_days=7)
    await seed_demand(db, "FC-CALM", 10, WEEKS)
    outcome = await forecasts.refresh(db, ["FC-CALM"], settings)
    assert outcome.shortages == 0
    assert await scalar(db, "SELECT count(*) FROM notifications "
                            "WHERE event = 'impending_shortage'") == 0


async def test_the_forecast_run_forecasts_every_product_in_batches_as_a_workflow(
        temporal_env, db, settings, api):
    for sku in ("W-1", "W-2", "W-3"):
        await make_product(api, sku, on_hand=5)
        await seed_demand(db, sku, 2, 6)
    await make_product(api, "W-GONE", backorder={"discontinued": True})
    in_processes = settings.model_copy(update={"forecast_processes": 1,
                                               "task_queue": settings.task_queue + "-fc"})
    async with start_worker(temporal_env.client, db, in_processes, relay=False) as running:
        result = await running.client.execute_workflow(
            ForecastWorkflow.run, ForecastRun(batch_size=2), id=f"fc-{uuid.uuid4()}",
            task_queue=in_processes.task_queue)
    assert (result.skus, result.batches, result.forecast, result.fallback) == (3, 2, 3, 3)
    stored = await rows(db, "SELECT sku, model FROM forecasts ORDER BY sku")
    assert [(r.sku, r.model) for r in stored] == [("W-1", "fallback"), ("W-2", "fallback"),
                                                  ("W-3", "fallback")]


async def test_no_impending_shortage_for_waiting_lines_that_supply_arriving_today_covers(
        api, db, settings):
    await make_product(api, "FC-COVERED", lead_time_days=7)
    await place(api, "FC-COVERED-1", [("FC-COVERED", 5)])
    await put_po(api, "PO-COVERED", "sup-cov", "FC-COVERED", 1000, 0)
    outcome = await forecasts.refresh(db, ["FC-COVERED"], settings)
    assert outcome.shortages == 0
    f = await get_forecast(api, "FC-COVERED")
    assert f["stockout_date"] is None


async def test_a_replenishment_horizon_beyond_the_forecast_is_refused_naming_it(api, settings):
    r = await api.get("/replenishment", params={"horizon_weeks": settings.forecast_horizon_weeks + 1})
    assert r.status_code == 422 and r.json()["field"] == "horizon_weeks"
    assert r.json()["error"] == "horizon_beyond_forecast"
    assert (await api.get("/replenishment", params={
        "horizon_weeks": settings.forecast_horizon_weeks})).status_code == 200


async def test_a_line_no_supply_covers_offers_the_substitutes_in_stock(api):
    await make_product(api, "SUB-ALT", on_hand=4, name="Kettle, steel")
    await make_product(api, "SUB-EMPTY", on_hand=0)
    await make_product(api, "SUB-MAIN", substitutes=["SUB-EMPTY", "SUB-ALT"])
    order = await place(api, "SUB-ORDER", [("SUB-MAIN", 2)])
    line_id = order["lines"][0]["id"]
    detail = (await api.get(f"/backorders/{line_id}")).json()
    assert detail["no_supply"] is True
    assert detail["substitutes"] == [{"sku": "SUB-ALT", "name": "Kettle, steel", "available": 4}]
    await put_po(api, "PO-SUB", "sup-sub", "SUB-MAIN", 5, 10)
    assert (await api.get(f"/backorders/{line_id}")).json()["substitutes"] == []
