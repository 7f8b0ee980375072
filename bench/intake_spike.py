"""Intake at a sustained rate and under a burst, through a channel's webhook endpoint
(signed Shopify `orders/create` payloads), with Temporal's own bare workflow-start rate
measured in the same run as the ceiling for the drain.

Open loop: requests are offered at a fixed rate whatever the answers' speed (a flash
sale does not wait for us), with at most `MAX_IN_FLIGHT` outstanding; an offer that finds
no free slot is counted as shed by the client. Figures: accepted orders/s, latency
p50/p95/p99, what was refused and why, and the drain, from the burst's end until every
accepted order's line workflows have started (no line.start left undelivered).

Beside them, the closed-loop capacity (a few clients, each sending its next order when
the last is answered) and the CPU each process spent per accepted order there: what the
whole stack costs an order on this machine, and so the most it can take."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import statistics
import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.settings import Settings
from backorders.temporal import connect as temporal_connect
from bench.ceiling import BareLine
from bench.infra import CpuMeter, Infra

NAMESPACE = "bench-intake-spike"
CEILING_NAMESPACE = "bench-intake-starts"
SECRET = "bench-spike-secret-0123456789"
MAX_IN_FLIGHT = 256
CAPACITY_CLIENTS = 16


def _order(n: int) -> bytes:
    return json.dumps({
        "id": 10_000_000 + n, "order_number": n, "name": f"#{n}",
        "email": f"buyer{n % 997}@example.com", "created_at": "2026-11-30T10:15:00-05:00",
        "customer": {"id": 5_000_000 + n % 997, "email": f"buyer{n % 997}@example.com"},
        "line_items": [{"id": 1, "sku": f"SPIKE-{n % 50}", "quantity": 1, "price": "12.00"}],
    }).encode()


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


async def _post(http: httpx.AsyncClient, n: int) -> int:
    body = _order(n)
    try:
        r = await http.post("/channels/spike/orders", content=body, headers={
            "content-type": "application/json", "X-Shopify-Hmac-Sha256": _sign(body),
            "X-Shopify-Webhook-Id": f"spike-{n}"})
        return r.status_code
    except httpx.HTTPError:
        return 0


def _quantiles_ms(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {"p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000}


async def _capacity(http: httpx.AsyncClient, meter: CpuMeter, engine: AsyncEngine,
                    seconds: float, first: int) -> dict[str, Any]:
    """Closed loop: CAPACITY_CLIENTS clients, each sending its next order when the last
    is answered, so the stack runs at its own pace; with the CPU per accepted order, the
    drain of what the window left behind included."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    numbers = iter(range(first, first + 10**8))

    async def client(deadline: float) -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            status = await _post(http, next(numbers))
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                latencies.append(time.perf_counter() - sent)

    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(client(started + seconds) for _ in range(CAPACITY_CLIENTS)))
    elapsed = time.perf_counter() - started
    drain = await _drain(engine)
    cpu = meter.stop_seconds()
    accepted = max(len(latencies), 1)
    return {"clients": CAPACITY_CLIENTS, "seconds": elapsed, "accepted": len(latencies),
            "accepted_per_second": len(latencies) / elapsed, **_quantiles_ms(latencies),
            "statuses": statuses, "drain_seconds": drain,
            "cpu_ms_per_order": {name: s * 1000 / accepted for name, s in cpu.items()},
            "cores_busy": sum(cpu.values()) / meter.wall}


async def _offer(http: httpx.AsyncClient, rate: float, seconds: float,
                 first: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shed = 0
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int) -> None:
        sent = time.perf_counter()
        try:
            status = await _post(http, n)
        finally:
            slots.release()
        statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if slots.locked():
            shed += 1
            continue
        await slots.acquire()
        tasks.append(asyncio.create_task(one(first + i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {"offered_per_second": rate, "seconds": seconds, "offered": total,
            "accepted": len(latencies), "accepted_per_second": len(latencies) / elapsed,
            **_quantiles_ms(latencies), "statuses": statuses, "shed_by_client": shed}


_PENDING = sa.text(
    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL")


async def _drain(engine: AsyncEngine) -> float:
    """Seconds until no hand-off is left undelivered: every line workflow started."""
    started = time.perf_counter()
    async with asyncio.timeout(900):
        while True:
            async with engine.connect() as conn:
                if not (await conn.execute(_PENDING)).scalar_one():
                    return time.perf_counter() - started
            await asyncio.sleep(0.05)


async def _start_ceiling(infra: Infra, n: int) -> float:
    """Temporal's bare workflow starts per second on this machine, now: the most the
    relay could do."""
    assert infra.temporal is not None
    client = await temporal_connect(Settings(
        _env_file=None, temporal_address=infra.temporal.address,
        temporal_namespace=CEILING_NAMESPACE), attempts=120)
    slots = asyncio.Semaphore(64)

    async def start(i: int) -> None:
        async with slots:
            await client.start_workflow(BareLine.run, False, id=f"start-{i}",
                                        task_queue=f"{CEILING_NAMESPACE}-queue")

    started = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def bench_intake_spike(infra: Infra, engine: AsyncEngine, *, sustained_rate: float,
                             sustained_seconds: float, burst_rate: float,
                             burst_seconds: float) -> dict[str, Any]:
    worker = infra.worker(NAMESPACE)
    api, port = infra.api(NAMESPACE)
    headers = {"Authorization": f"Bearer {infra.admin_key(NAMESPACE)}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers=headers,
                                     limits=httpx.Limits(max_connections=MAX_IN_FLIGHT)) as http:
            r = await http.put("/channels/spike", json={"kind": "shopify", "secret": SECRET})
            assert r.status_code in (200, 201), r.text
            for i in range(50):
                r = await http.put(f"/products/SPIKE-{i}", json={})
                assert r.status_code in (200, 201), r.text
            await _offer(http, 20, 2, first=0)  # warm the API's pool and plans
            await _drain(engine)
            assert infra.temporal and infra.temporal.pid and infra.postgres
            postgres_pid = infra.postgres.pid()
            assert postgres_pid
            meter = CpuMeter(api=api.pid, worker=worker.pid, temporal=infra.temporal.pid,
                             postgres=postgres_pid)
            capacity = await _capacity(http, meter, engine, 15, first=500_000)
            sustained = await _offer(http, sustained_rate, sustained_seconds, first=1_000)
            sustained["drain_seconds"] = await _drain(engine)
            burst = await _offer(http, burst_rate, burst_seconds, first=1_000_000)
            burst["drain_seconds"] = await _drain(engine)
    finally:
        infra.stop(api)
        infra.stop(worker)
    starts = await _start_ceiling(infra, 2000)
    return {"capacity": capacity, "sustained": sustained, "burst": burst,
            "temporal_bare_starts_per_second": starts}
