"""The dashboard in a real browser (Debian's Chromium, offline): sign in, read a KPI tile,
filter the Backorders tab, open a line, export CSV, replay a dead message, and watch a
receipt show up without reloading. Screenshots land in each test's tmp dir."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.async_api import expect

from backorders.domain.access import Role
from tests.browser import collect_errors, serve
from tests.support import bearer, make_product, new_key, order_body, receive, wait_settled

if TYPE_CHECKING:
    from playwright.async_api import Page


@pytest.fixture
async def served(settings, db, temporal_env, worker) -> AsyncIterator[dict[str, Any]]:
    """The app on a loopback port, with three waiting lines, one shipped backorder and a
    dead outbox message; an admin API client and an ops key to sign in with."""
    from api.app import create_app

    fast = settings.model_copy(update={"dashboard_refresh_seconds": 1.0})
    app = create_app(fast, engine=db, client=temporal_env.client)
    admin = await new_key(db, fast, Role.ADMIN)
    ops = await new_key(db, fast, Role.OPS)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url,
                                                         headers=bearer(admin)) as api:
        await make_product(api, "WEB-1")
        await make_product(api, "WEB-2")
        r = await api.put("/purchase-orders/PO-W1", json={
            "supplier": {"id": "acme", "name": "Acme Parts"},
            "lines": [{"sku": "WEB-1", "quantity": 10, "expected_at": "2030-02-01"}]})
        assert r.status_code in (200, 201), r.text
        orders = {}
        for number, sku, quantity in (("W-1", "WEB-1", 2), ("W-2", "WEB-1", 3), ("W-3", "WEB-2", 1),
                                      ("W-4", "WEB-2", 1)):
            r = await api.post("/orders", json=order_body(number, [(sku, quantity)]))
            assert r.status_code == 201, r.text
            orders[number] = r.json()
        await receive(api, "GRN-W", "WEB-2", 1)  # W-3's unit: a backorder that ships
        await wait_settled(db)
        async with db.begin() as conn:
            dead = (await conn.execute(sa.text("""
                INSERT INTO outbox (kind, line_id, payload, dead_at, attempts, last_error)
                VALUES ('line.expected', :l, '{}', now(), 25, 'workflow not found')
                RETURNING id"""), {"l": orders["W-4"]["lines"][0]["id"]})).scalar_one()
        yield {"url": base_url, "api": api, "ops": ops, "orders": orders, "dead": dead}


async def sign_in(page: Page, served: dict[str, Any]) -> None:
    await page.goto(f"{served['url']}/dashboard")
    assert "/dashboard/login" in page.url
    await page.fill("input[name=api_key]", served["ops"])
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/dashboard$"))


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    await page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


async def test_a_manager_signs_in_and_reads_the_kpis(page: Page, served, tmp_path):
    errors = collect_errors(page)
    await sign_in(page, served)
    tile = page.locator('[data-kpi="backorder_conversion_rate"]')
    await tile.wait_for()
    assert "100.0%" in await tile.locator(".value").inner_text()
    assert "met" in await tile.get_attribute("class")
    assert "target > 95.0%" in await tile.locator(".target").inner_text()
    await expect(page.locator("canvas[data-drawn=true]")).to_have_count(3)
    await shot(page, tmp_path, "overview")
    assert errors == []


async def test_the_backorders_tab_filters_opens_a_line_and_exports_csv(page: Page, served,
                                                                       tmp_path):
    errors = collect_errors(page)
    await sign_in(page, served)
    await page.click("nav >> text=Backorders")
    await page.fill("input[name=sku]", "WEB-1")
    await page.click("form.filters button")
    await page.wait_for_url(re.compile(r"/dashboard/backorders\?.*sku=WEB-1"))
    rows = page.locator("table.lines tbody tr[data-line]")
    assert await rows.count() == 2
    assert "2 line(s), 5 unit(s) waiting" in await page.locator("h1").inner_text()
    await shot(page, tmp_path, "backorders")

    async with page.expect_download() as download:
        await page.click("text=Export CSV")
    exported = await (await download.value).path()
    table = list(csv.DictReader(io.StringIO(Path(exported).read_text())))
    assert [r["order_number"] for r in table] == ["W-1", "W-2"]

    await page.click("table.lines >> text=W-2")
    await page.wait_for_url(re.compile(r"/dashboard/lines/"))
    line = served["orders"]["W-2"]["lines"][0]
    link = page.locator("text=Open its workflow in the Temporal UI")
    assert (await link.get_attribute("href")).endswith(f"/workflows/{line['workflow_id']}")
    assert "backordered" in await page.locator("ol.timeline").inner_text()
    await shot(page, tmp_path, "line")
    assert errors == []


async def test_a_dead_message_is_replayed_from_the_operations_page(page: Page, served, tmp_path):
    await sign_in(page, served)
    await page.click("nav >> text=Operations")
    row = page.locator(f'tr[data-message="{served["dead"]}"]')
    assert "workflow not found" in await row.inner_text()
    await row.locator("button").click()
    await page.wait_for_url(re.compile(rf"replayed={served['dead']}"))
    assert "was put back for delivery" in await page.locator(".notice").inner_text()
    await shot(page, tmp_path, "operations")


async def test_a_receipt_shows_up_on_the_open_backorders_page_without_a_reload(
        page: Page, served, db, tmp_path):
    await sign_in(page, served)
    await page.goto(f"{served['url']}/dashboard/backorders?sku=WEB-1")
    marker = await page.evaluate("window.notReloaded = true")
    assert marker is True
    heading = page.locator("main#live h1")
    assert "2 line(s), 5 unit(s)" in await heading.inner_text()
    await receive(served["api"], "GRN-W1", "WEB-1", 2)  # W-1's two units
    await expect(page.locator("main#live h1")).to_contain_text("1 line(s), 3 unit(s)",
                                                                timeout=15_000)
    assert await page.evaluate("window.notReloaded") is True
    await shot(page, tmp_path, "live")
