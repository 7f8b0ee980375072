"""The dashboard's forecast and replenishment pages over HTTP: what to order, ranked as the
service ranks it and filtered from the URL; one SKU's model, intervals, projected stock
and stockout date, with the chart data the page's script draws; and who may open them.
Last, the same pages in Chromium (as test_dashboard_browser.py): the charts are drawn."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import expect

from api.access import RULES
from api.dashboard import format as fmt
from api.dashboard import session
from backorders.domain.access import Role
from backorders.services import forecasts
from tests.browser import collect_errors, serve
from tests.support import bearer, make_product, new_key
from tests.test_dashboard import browser, cookie_for, signed_in
from tests.test_forecasting import WEEKS, seed_demand

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.usefixtures("one_utc_day")

PAGES = ["/dashboard/replenishment", "/dashboard/forecast/DF-SHORT"]


async def seeded(app: Any, db, settings) -> None:
    """Four SKUs forecast as the scheduled run would: two short (from two suppliers), one
    with a month of history (the fallback), one with stock for years. DF-SHORT sold 70 a
    week, 84 in the last six."""
    async with browser(app, headers=bearer(await new_key(db, settings, Role.ADMIN))) as api:
        for sku, on_hand, per_day, weeks, supplier in (
                ("DF-SHORT", 100, 10, WEEKS, "acme"), ("DF-OTHER", 0, 3, WEEKS, "zenith"),
                ("DF-NEW", 5, 3, 4, "acme"), ("DF-COVERED", 100_000, 1, WEEKS, "acme")):
            await make_product(api, sku, on_hand=on_hand, name=f"Part {sku}",
                               supplier_id=supplier, lead_time_days=7)
            await seed_demand(db, sku, per_day, weeks)
    await seed_demand(db, "DF-SHORT", 2, 6)  # a step up: a naive forecast's error to scale by
    await forecasts.compute(db, ["DF-SHORT", "DF-OTHER", "DF-NEW", "DF-COVERED"], settings)


def table_rows(page: str) -> dict[str, str]:
    """Each suggestion row's text by its SKU, in the page's order."""
    return {m[1]: m[2] for m in re.finditer(r'<tr data-sku="([^"]+)">(.*?)</tr>', page, re.S)}


def charts(page: str) -> list[dict[str, Any]]:
    return [json.loads(html.unescape(m)) for m in re.findall(r'data-chart="([^"]+)"', page)]


async def test_the_replenishment_page_lists_what_to_order_ranked_and_filtered(app, db, settings):
    await seeded(app, db, settings)
    ranked = await forecasts.replenishment(db, settings, limit=1000)
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        page = (await client.get("/dashboard/replenishment")).text
        assert '<a href="/dashboard/replenishment" aria-current="page">Replenishment</a>' in page
        rows = table_rows(page)
        assert list(rows) == [i.sku for i in ranked] and "DF-COVERED" not in rows
        short = next(i for i in ranked if i.sku == "DF-SHORT")
        assert short.suggested_quantity > 0 and short.stockout_date is not None
        assert f'data-suggested="{short.suggested_quantity}"' in rows["DF-SHORT"]
        assert fmt.day(short.stockout_date) in rows["DF-SHORT"]
        assert '<a href="/dashboard/forecast/DF-SHORT">DF-SHORT</a>' in rows["DF-SHORT"]
        assert "Part DF-SHORT" in rows["DF-SHORT"] and "acme" in rows["DF-SHORT"]

        acme = table_rows((await client.get("/dashboard/replenishment?supplier_id=acme")).text)
        assert list(acme) == [i.sku for i in ranked if i.supplier_id == "acme"]
        assert "DF-OTHER" not in acme and "DF-SHORT" in acme
        one_week = (await client.get("/dashboard/replenishment?horizon_weeks=1")).text
        [short_1] = [i for i in await forecasts.replenishment(db, settings, horizon_weeks=1)
                     if i.sku == "DF-SHORT"]
        assert short_1.predicted_backorder_units < short.predicted_backorder_units
        assert f"<td class=\"num\">{fmt.number(short_1.predicted_backorder_units)}</td>" in \
            table_rows(one_week)["DF-SHORT"]
        assert "within 1 week(s)" in one_week

        for query, problem in (("horizon_weeks=0", "horizon_weeks: must be a whole number from 1 to 12"),
                               ("horizon_weeks=soon", "horizon_weeks: must be a whole number"),
                               ("supplier_id=nobody", "supplier_id: 'nobody' is not a known supplier"),
                               ("supplier_id=%00x&page=%C2%B2", "supplier_id: '\\x00x' is not valid")):
            r = await client.get(f"/dashboard/replenishment?{query}")
            assert r.status_code == 200, (query, r.status_code)
            assert "Some filters were ignored" in r.text and problem in html.unescape(r.text), query
            assert list(table_rows(r.text)) == list(rows), query  # the filter left out


async def test_the_forecast_page_shows_the_model_stockout_charts_and_suggestion(app, db, settings):
    await seeded(app, db, settings)
    f = await forecasts.forecast(db, "DF-SHORT", settings)
    assert not f.fallback and f.stockout_date is not None
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        product = (await client.get("/dashboard/products/DF-SHORT")).text
        assert 'href="/dashboard/forecast/DF-SHORT"' in product
        page = (await client.get("/dashboard/forecast/DF-SHORT")).text
        assert f"<dd data-model>{f.model}</dd>" in page and "Fallback" not in page
        assert fmt.day(f.stockout_date) in re.search(r"<dd data-stockout>(.*?)</dd>", page).group(1)
        assert f'data-suggested="{f.replenishment.suggested_quantity}"' in page
        assert f"{f.backtest_mae:.2f} units/week" in page and f"{f.backtest_mase:.2f}" in page

        demand, stock = charts(page)
        history, ahead = len(f.weekly_history), len(f.forecast)
        assert len(demand["labels"]) == history + ahead == WEEKS + ahead
        by_label = {d["label"]: d for d in demand["datasets"]}
        assert by_label["Ordered"]["data"] == [70.0] * (history - 6) + [84.0] * 6 + [None] * ahead
        assert by_label["Forecast"]["data"][history:] == [round(w.mean, 1) for w in f.forecast]
        assert by_label["95% interval"]["band"] and by_label["95% upper"]["edge"]
        assert by_label["80% interval"]["data"][history:] == [round(w.lo80, 1) for w in f.forecast]
        assert by_label["80% upper"]["data"][history:] == [round(w.hi80, 1) for w in f.forecast]

        assert stock["labels"] == [w.week_start.isoformat() for w in f.projection]
        marker = next(d for d in stock["datasets"] if d.get("marker"))
        assert marker["label"] == f"Stockout {fmt.day(f.stockout_date)}"
        week = f.stockout_date - timedelta(days=f.stockout_date.weekday())
        assert marker["data"][stock["labels"].index(week.isoformat())] == 0
        assert sum(v is not None for v in marker["data"]) == 1

        new = (await client.get("/dashboard/forecast/DF-NEW")).text
        assert 'data-fallback="too_short"' in new and "<dd data-model>fallback</dd>" in new
        assert "only 4 week(s) of demand history, fewer than the 32 a backtest needs" in new

        missing = await client.get("/dashboard/forecast/NOPE")  # as an unknown line is
        assert missing.status_code == 404 and "no product with SKU" in missing.text


async def test_only_ops_and_admin_sessions_open_the_forecast_pages(app, db, settings):
    await seeded(app, db, settings)
    for path in ("GET /dashboard/replenishment", "GET /dashboard/forecast/{sku}"):
        assert RULES[path].session and RULES[path].roles == frozenset({Role.OPS})
    keys = {role: await new_key(db, settings, role, channel="web" if role is Role.CHANNEL else None)
            for role in Role}
    async with browser(app) as anonymous:
        for path in PAGES:
            r = await anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login?next=")
    for role in (Role.CHANNEL, Role.ERP):
        cookie = await cookie_for(db, settings, keys[role].split("_")[1])
        async with browser(app, cookies={session.COOKIE: cookie}) as client:
            for path in PAGES:
                r = await client.get(path)
                assert r.status_code == 403 and "ops and admin keys" in r.text, (role, path)
        async with browser(app, headers=bearer(keys[role])) as client:
            assert (await client.get(PAGES[0])).status_code == 303  # a bearer key is no session
    for role in (Role.OPS, Role.ADMIN):
        async with signed_in(app, keys[role]) as client:
            for path in PAGES:
                r = await client.get(path)
                assert r.status_code == 200, (role, path, r.text[:300])
                assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), "no inline scripts"


async def test_a_manager_opens_a_forecast_from_the_replenishment_table_and_sees_its_charts(
        page: Page, settings, db, temporal_env, worker, tmp_path: Path):
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)
    ops = await new_key(db, settings, Role.OPS)
    async with serve(app) as base_url:
        await seeded(app, db, settings)
        errors = collect_errors(page)
        await page.goto(f"{base_url}/dashboard/replenishment")
        await page.fill("input[name=api_key]", ops)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/dashboard/replenishment$"))
        await page.screenshot(path=str(tmp_path / "replenishment.png"), full_page=True)
        await page.click('tr[data-sku="DF-SHORT"] >> text=DF-SHORT')
        await page.wait_for_url(re.compile(r"/dashboard/forecast/DF-SHORT$"))
        await expect(page.locator("canvas[data-drawn=true]")).to_have_count(2)
        legends = await page.evaluate("""Array.from(document.querySelectorAll("canvas"),
            c => Chart.getChart(c).legend.legendItems.map(i => i.text))""")
        assert legends[0] == ["Ordered", "Forecast", "95% interval", "80% interval"]  # no edges
        assert legends[1][-1].startswith("Stockout ")
        await page.screenshot(path=str(tmp_path / "forecast.png"), full_page=True)
        assert errors == []
