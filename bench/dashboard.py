"""The dashboard and /kpis at scale: 10,000 waiting lines across 200 SKUs, over a history of
20,000 backorders already shipped (with their allocations, dispatch movements and
messages), answered by one API process. Goal: under 500 ms per page."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

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
}


async def bench_dashboard(infra: Infra, engine: AsyncEngine, waiting: int,
                          repeats: int = 15) -> dict[str, Any]:
    await seed(engine, waiting, shipped=2 * waiting)
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
                headers = {"Authorization": f"Bearer {key}"} if path.startswith("/kpis") else {}
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
    return {"waiting_lines": waiting, "history_lines": 2 * waiting, "repeats": repeats,
            "pages": figures}
