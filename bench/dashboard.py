"""The dashboard and /kpis at scale: 10,000 waiting lines across 200 SKUs, over a history of
20,000 backorders already shipped (with their allocations, dispatch movements and
messages), and a catalogue of 10,000 forecast SKUs (20 suppliers, a purchase order line
for every third SKU) for the replenishment pages, answered by one API process. Goal:
under 500 ms per page."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.settings import Settings
from bench.infra import Infra

NAMESPACE = "bench-dashboard"

_SEED = """
WITH skus AS (
    INSERT INTO products (sku, name)
    SELECT 'DB-' || s, 'Dashboard part ' || s FROM generate_series(1, :skus) s
    RETURNING sku
), stock_rows AS (
    INSERT INTO stock (sku) SELECT sku FROM skus
), customers_ AS (
    INSERT INTO customers (id, email)
    SELECT 'cust-' || c, 'cust-' || c || '@example.com' FROM generate_series(1, 2000) c
    ON CONFLICT DO NOTHING
), ids AS (
    SELECT g, gen_random_uuid() AS order_id, gen_random_uuid() AS line_id,
           gen_random_uuid() AS allocation_id,
           g > :shipped AS waiting,
           'DB-' || (1 + g % :skus) AS sku, 'cust-' || (1 + g % 2000) AS customer,
           now() - make_interval(secs => (:total - g) * 240.0) AS placed_at
    FROM generate_series(1, :total) g
), o AS (
    INSERT INTO orders (id, channel, order_number, placed_at, customer_id, customer_tier,
                        order_value, request_hash, created_at)
    SELECT order_id, CASE WHEN g % 3 = 0 THEN 'shop' ELSE 'web' END, 'DB-' || g, placed_at,
           customer, CASE WHEN g % 10 = 0 THEN 'gold' ELSE 'standard' END, 10, 'seed', placed_at
    FROM ids
), l AS (
    INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
        fulfillable_quantity, initial_backordered, waiting_quantity, shipped_quantity, status,
        workflow_id, placed_at, tier_rank, order_value, customer_id, no_supply, created_at,
        expected_date, promised_date)
    SELECT line_id, order_id, 1, sku, 2, 10, 0, 2, CASE WHEN waiting THEN 2 ELSE 0 END,
           CASE WHEN waiting THEN 0 ELSE 2 END,
           CASE WHEN waiting THEN 'backordered' ELSE 'dispatched' END,
           'line-' || line_id, placed_at, 3, 10, customer, waiting AND g % 7 = 0, placed_at,
           CASE WHEN waiting AND g % 7 <> 0 THEN CAST(now() AS date) + (g % 40) END,
           CASE WHEN g % 5 = 0 THEN CAST(placed_at AS date) + 14 END
    FROM ids
), a AS (
    INSERT INTO allocations (id, line_id, order_id, sku, quantity, source, status,
                             created_at, dispatched_at)
    SELECT allocation_id, line_id, order_id, sku, 2, 'receipt', 'dispatched',
           placed_at + interval '3 days', placed_at + interval '3 days 2 hours'
    FROM ids WHERE NOT waiting
), m AS (
    INSERT INTO inventory_movements (sku, delta, on_hand_after, reason, reference, created_at)
    SELECT sku, -2, 0, 'dispatch', CAST(allocation_id AS text),
           placed_at + interval '3 days 2 hours'
    FROM ids WHERE NOT waiting
), e AS (
    INSERT INTO line_events (line_id, kind, message, data, at)
    SELECT line_id, 'backordered', '2 unit(s) backordered', '{"quantity": 2}', placed_at FROM ids
)
INSERT INTO notifications (idempotency_key, event, audience, customer_id, order_id, line_id,
                           sku, status, channel, event_at, created_at, sent_at)
SELECT line_id || ':allocated:' || allocation_id, 'allocated', 'customer', customer, order_id,
       line_id, sku, 'sent', 'email', placed_at + interval '3 days',
       placed_at + interval '3 days', placed_at + interval '3 days 40 seconds'
FROM ids WHERE NOT waiting
"""


async def seed(engine: AsyncEngine, waiting: int, shipped: int, skus: int = 200) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(_SEED), {"skus": skus, "shipped": shipped,
                                            "total": shipped + waiting})
        await conn.execute(sa.text(
            "UPDATE stock s SET backordered = w.units FROM (SELECT sku, sum(waiting_quantity) "
            "AS units FROM order_lines GROUP BY sku) w WHERE w.sku = s.sku"))
        await conn.execute(sa.text("ANALYZE"))


_CATALOGUE = """
WITH suppliers_ AS (
    INSERT INTO suppliers (id, name)
    SELECT 'sup-' || s, 'Supplier ' || s FROM generate_series(1, 20) s
), products_ AS (
    INSERT INTO products (sku, name, supplier_id, lead_time_days)
    SELECT 'RP-' || n, 'Catalogue part ' || n, 'sup-' || (1 + n % 20), 7 + n % 21
    FROM generate_series(1, :skus) n
), stock_ AS (
    INSERT INTO stock (sku, on_hand, reserved)
    SELECT 'RP-' || n, 20 + (n * 37) % 400, (n * 11) % 20 FROM generate_series(1, :skus) n
), forecasts_ AS (
    INSERT INTO forecasts (sku, computed_at, first_week, history_hash, model, pattern,
                           fallback, history_weeks, backtest_mae, backtest_mase, error_sd,
                           weeks)
    SELECT 'RP-' || n, now(), date_trunc('week', now())::date, 'seed', 'CrostonSBA',
           'intermittent', false, 52, 3.0, 0.9, 2.0 + n % 9,
           (SELECT jsonb_agg(jsonb_build_object('mean', m, 'lo80', m * 0.6, 'hi80', m * 1.4,
                                                'lo95', m * 0.4, 'hi95', m * 1.7))
            FROM (SELECT (5 + n % 60)::float AS m FROM generate_series(1, :weeks)) w)
    FROM generate_series(1, :skus) n
), orders_ AS (
    INSERT INTO purchase_orders (po_number, supplier_id, created_at)
    SELECT 'RPO-' || n, 'sup-' || (1 + n % 20), now() - interval '10 days'
    FROM generate_series(1, :skus) n WHERE n % 3 = 0
)
INSERT INTO purchase_order_lines (po_number, sku, quantity, expected_at, promised_at)
SELECT 'RPO-' || n, 'RP-' || n, 50 + n % 100, CAST(now() AS date) + n % 40,
       CAST(now() AS date) + n % 40
FROM generate_series(1, :skus) n WHERE n % 3 = 0
"""


async def seed_catalogue(engine: AsyncEngine, skus: int, weeks: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(_CATALOGUE), {"skus": skus, "weeks": weeks})
        await conn.execute(sa.text("ANALYZE"))


PAGES = {
    "backorders page 1": "/dashboard/backorders",
    "backorders page 100": "/dashboard/backorders?page=100",
    "backorders by SKU": "/dashboard/backorders?sku=DB-17",
    "backorders sourcing, oldest": "/dashboard/backorders?view=sourcing&sort=oldest",
    "backorders closest": "/dashboard/backorders?view=closest",
    "overview (KPIs, 3 series)": "/dashboard",
    "products": "/dashboard/products",
    "GET /kpis": "/kpis",
    "GET /kpis?sku=": "/kpis?sku=DB-17",
    "replenishment": "/dashboard/replenishment",
    "GET /replenishment": "/replenishment",
    "GET /replenishment?supplier_id=": "/replenishment?supplier_id=sup-7",
}


async def bench_dashboard(infra: Infra, engine: AsyncEngine, waiting: int,
                          repeats: int = 15, catalogue: int = 10_000) -> dict[str, Any]:
    await seed(engine, waiting, shipped=2 * waiting)
    await seed_catalogue(engine, catalogue,
                         Settings.model_fields["forecast_horizon_weeks"].default)
    key = infra.admin_key(NAMESPACE)
    api, port = infra.api(NAMESPACE)
    figures: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            form = await client.get("/dashboard/login")
            token = re.search(r'name="form_token" value="([^"]+)"', form.text)
            assert token is not None, form.text
            r = await client.post("/dashboard/login",
                                  data={"api_key": key, "form_token": token.group(1)})
            assert r.status_code == 303, r.text
            for name, path in PAGES.items():
                headers = {} if path.startswith("/dashboard") else {"Authorization": f"Bearer {key}"}
                for _ in range(3):  # warm the plan cache and the pool
                    (await client.get(path, headers=headers)).raise_for_status()
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    (await client.get(path, headers=headers)).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                figures[name] = {"p50_ms": statistics.median(times),
                                 "p95_ms": times[int(0.95 * (len(times) - 1))],
                                 "max_ms": times[-1]}
    finally:
        infra.stop(api)
    return {"waiting_lines": waiting, "history_lines": 2 * waiting, "catalogue": catalogue,
            "repeats": repeats,
            "pages": figures}
