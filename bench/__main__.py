"""`make bench`: measure the engine against what Temporal itself can do on this machine.

Scenarios, each in its own Temporal namespace with its own worker process so earlier
work cannot slow later figures down:

1. ceiling    bare workflows shaped like a line's life (signal, 4 dispatch activities and
              3 message activities), no database: N first and N last, the same burst the
              lifecycle gets, timed over a window as long as its own
2. lifecycle  N backordered lines, one receipt allocates them all: lines dispatched per s;
              run twice, right after the first ceiling and right before the last, so the
              ratio rests on two ceiling / lifecycle pairs rather than one run of each
3. allocation a receipt against 10,000 waiting lines: transaction time, hand-off time, and
              worker and server memory with none and 10,000 waiting
4. intake     orders per second through the HTTP API at fixed concurrency, with latency
   intake-spike  signed Shopify webhooks offered open-loop at a sustained rate, then a
              burst at several times it: accepted/s, p50/p95/p99, and the drain until
              every order's workflows started, beside Temporal's bare start rate
5. dashboard  the dashboard's pages and /kpis with 10,000 lines waiting over a history of
              20,000 shipped backorders: latency per page (goal < 500 ms)
6. scale      (`make bench-scale`, not in the 10-minute default) memory and allocation time
              with 10k and 50k lines waiting
   eta-honesty  a simulated year of suppliers' delays (`bench/eta_honesty.py`, no
              database): lines delivered by their latest date and the likely date's error,
              against the promised date alone
   forecast   demand forecasts (`bench/forecast.py`, no database): MASE of the chosen
              models against the naive and seasonal naive forecasts on synthetic smooth,
              seasonal, intermittent and lumpy demand, and 1,000 / 10,000 SKUs timed through
              the forecast process pool (goals: below naive on every shape; 10,000 < 5 min)

Two diagnostics, to split the ratio's gap, run with `--diagnostics` (or `--only`):
   visible    N/2 bare workflows carrying a line's search attributes and status changes:
              what visibility costs the server
   activities the lifecycle's activities for N lines in one process, without Temporal:
              their CPU per line, to set beside the ceiling's and the lifecycle's

Prints a table and writes bench/results/bench-<time>.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.dispatch import DispatchActivities
from activities.notify import NotifyActivities
from backorders.contracts.activities import LineNotice, StepInput
from backorders.db import create_engine, dispose
from backorders.notify.service import Notifier
from backorders.schemas import ProductIn, ReceiptIn
from backorders.services import inventory, outbox, receipts
from backorders.settings import Settings
from backorders.temporal import connect as temporal_connect
from bench import render
from bench.ceiling import LINE_LIKE_SEARCH_ATTRIBUTES, BareLine
from bench.dashboard import NAMESPACE as DASHBOARD_NAMESPACE
from bench.dashboard import bench_dashboard
from bench.eta_honesty import bench_eta_honesty
from bench.eta_honesty import table_rows as eta_honesty_rows
from bench.forecast import bench_forecast
from bench.forecast import table_rows as forecast_rows
from bench.infra import CpuMeter, Infra, rss
from bench.intake_spike import CEILING_NAMESPACE as SPIKE_CEILING_NAMESPACE
from bench.intake_spike import NAMESPACE as SPIKE_NAMESPACE
from bench.intake_spike import bench_intake_spike
from handoff.deliver import OutboxDeliverer
from worker import simulated_warehouse

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ["ceiling", "lifecycle", "allocation", "intake", "intake-spike", "dashboard", "scale",
             "eta-honesty", "forecast"]
SERVERLESS = {"forecast"}
"""Scenarios that run before PostgreSQL and Temporal start, and on their own start neither."""
DIAGNOSTICS = ["visible", "activities"]
NAMESPACES = ["bench-ceiling", "bench-ceiling-visible", "bench-ceiling-after", "bench-lifecycle-1",
              "bench-lifecycle-2", "bench-allocation", "bench-intake", "bench-scale",
              DASHBOARD_NAMESPACE, SPIKE_NAMESPACE, SPIKE_CEILING_NAMESPACE]


async def bounded(jobs: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with slots:
            return await job()

    return await asyncio.gather(*(run(j) for j in jobs))


async def seed_waiting_lines(engine: AsyncEngine, sku: str, count: int, prefix: str) -> None:
    """Backordered lines straight into the database, with their start messages, as intake
    would have left them (no purchase order covers them: `no_supply`); the relay in the
    worker then starts their workflows."""
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO customers (id, email) VALUES ('bench', 'bench@example.com') "
            "ON CONFLICT DO NOTHING"))
        await conn.execute(sa.text(
            """
            WITH ids AS (
                SELECT g, gen_random_uuid() AS order_id, gen_random_uuid() AS line_id,
                       now() - make_interval(secs => :count - g) AS placed_at
                FROM generate_series(1, :count) g
            ), o AS (
                INSERT INTO orders (id, channel, order_number, placed_at, customer_id,
                                    customer_tier, order_value, request_hash)
                SELECT order_id, 'bench', :prefix || g, placed_at, 'bench', 'standard', 10, 'seed'
                FROM ids
            ), l AS (
                INSERT INTO order_lines (id, order_id, line_no, sku, quantity, unit_price,
                    fulfillable_quantity, initial_backordered, waiting_quantity, status,
                    workflow_id, placed_at, tier_rank, order_value, customer_id, no_supply)
                SELECT line_id, order_id, 1, :sku, 1, 10, 0, 1, 1, 'backordered',
                       'line-' || line_id, placed_at, 3, 10, 'bench', true
                FROM ids ORDER BY g
                RETURNING id
            )
            INSERT INTO outbox (kind, line_id, payload, available_at)
            SELECT 'line.start', id, '{}'::jsonb, now() FROM l
            """
        ), {"prefix": prefix, "count": count, "sku": sku})
        await conn.execute(sa.text(
            "UPDATE stock SET backordered = backordered + :n WHERE sku = :sku"),
            {"n": count, "sku": sku})
        await outbox.wake_relay(conn)


async def pending_outbox(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL"
        ))).scalar_one()


def _keep(into: list[int]) -> Callable[[list[int]], Awaitable[None]]:
    """A hand-off that keeps a write's outbox rows, to deliver them outside its timing."""
    async def keep(outbox_ids: list[int]) -> None:
        into.extend(outbox_ids)
    return keep


async def wait_outbox_drained(engine: AsyncEngine) -> float:
    started = time.perf_counter()
    async with asyncio.timeout(900):
        while await pending_outbox(engine):  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def wait_closed(client: Client, n: int) -> None:
    """Until n workflows of the namespace have closed, all of them completed. Counting
    from visibility costs the server one query a quarter second; a `result()` long poll
    per workflow would wake on every event of every workflow in the measured phase."""
    async with asyncio.timeout(900):
        while (await client.count_workflows("ExecutionStatus != 'Running'")).count < n:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
    completed = (await client.count_workflows("ExecutionStatus = 'Completed'")).count
    assert completed == n, f"{n - completed} workflows did not complete"


async def wait_backorders_announced(engine: AsyncEngine, sku: str, n: int) -> None:
    """Until n lines of the SKU have sent their "backordered" message: each new line's
    last piece of work before it waits. Idle CPU alone can mislead with thousands of
    lines starting: the worker may still be sending while the server has gone quiet."""
    async with asyncio.timeout(900):
        while True:
            async with engine.connect() as conn:
                sent = (await conn.execute(sa.text(
                    "SELECT count(*) FROM notifications WHERE sku = :sku "
                    "AND event = 'backordered' AND status <> 'pending'"), {"sku": sku})).scalar_one()
            if sent >= n:
                return
            await asyncio.sleep(0.5)


def wait_idle(pid: int, below: float = 5.0, timeout: float = 120) -> None:
    """Wait until a process has done its backlog (CPU under `below` % for a second)."""
    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.cpu_percent(interval=1.0) > below:
        pass


def settle(worker: int, infra: Infra) -> None:
    """Before a timed phase: the worker and the server have both done their backlog (the
    server writes visibility records for the starts after the worker is done with them)."""
    wait_idle(worker)
    wait_idle(infra.temporal.pid)  # type: ignore[union-attr, arg-type]
    wait_idle(worker)


def services_settings(infra: Infra, namespace: str) -> Settings:
    env = infra.env(namespace)
    return Settings(_env_file=None, database_url=env["DATABASE_URL"],
                    temporal_address=env["TEMPORAL_ADDRESS"], temporal_namespace=namespace,
                    task_queue=env["TASK_QUEUE"])


async def connect(infra: Infra, namespace: str) -> Client:
    """The dev server's port opens a moment before its frontend is healthy."""
    assert infra.temporal is not None
    settings = Settings(_env_file=None, temporal_address=infra.temporal.address,
                        temporal_namespace=namespace)
    return await temporal_connect(settings, attempts=120)


# --- 1. ceiling -------------------------------------------------------------------------


async def bench_ceiling(infra: Infra, n: int, namespace: str, *,
                        visible: bool = False) -> dict[str, Any]:
    """`visible`: with the line's search attributes and status changes. Each run has its
    own namespace, so an earlier run's closed workflows do not count towards it."""
    proc = infra.ceiling_worker(namespace)
    client = await connect(infra, namespace)
    ids = [f"bare-{i}" for i in range(n)]
    attributes = LINE_LIKE_SEARCH_ATTRIBUTES if visible else None
    await bounded((lambda i=i: client.start_workflow(
        BareLine.run, visible, id=i, task_queue=f"{namespace}-queue",
        search_attributes=attributes) for i in ids), 64)
    settle(proc.pid, infra)
    meter = CpuMeter(worker=proc.pid, server=infra.temporal.pid)  # type: ignore[union-attr, arg-type]
    meter.start()
    started = time.perf_counter()
    await bounded((lambda i=i: client.get_workflow_handle(i).signal(BareLine.allocated)
                   for i in ids), 64)
    await wait_closed(client, n)
    seconds = time.perf_counter() - started
    cpu = meter.stop()
    infra.stop(proc)
    return {"workflows": n, "seconds": seconds, "per_second": n / seconds, **cpu}


def combined(runs: list[dict[str, Any]], count: str = "workflows") -> dict[str, Any]:
    """Runs of the same scenario as one: workflows (or lines) over seconds, CPU weighted
    by time, and each run's own rate."""
    seconds = sum(r["seconds"] for r in runs)
    total = sum(r[count] for r in runs)
    shares = {k: sum(r[k] * r["seconds"] for r in runs) / seconds
              for k in runs[0] if k.endswith("_cpu_share")}
    return {count: total, "seconds": seconds, "per_second": total / seconds,
            "runs": [r["per_second"] for r in runs], **shares}


# --- 2. lifecycle -----------------------------------------------------------------------


async def bench_lifecycle(infra: Infra, engine: AsyncEngine, n: int, run: int) -> dict[str, Any]:
    """`run`: which of the scenario's runs, each with its own namespace, SKU and receipt."""
    namespace, sku, receipt_id = f"bench-lifecycle-{run}", f"BENCH-LC{run}", f"LC-{run}"
    settings = services_settings(infra, namespace)
    proc = infra.worker(namespace)
    client = await connect(infra, namespace)
    await inventory.put_product(engine, sku, ProductIn())
    await seed_waiting_lines(engine, sku, n, f"lc{run}-")
    start_seconds = await wait_outbox_drained(engine)
    await wait_backorders_announced(engine, sku, n)
    settle(proc.pid, infra)

    meter = CpuMeter(worker=proc.pid, server=infra.temporal.pid,  # type: ignore[union-attr, arg-type]
                     postgres=infra.postgres.pid())  # type: ignore[union-attr]
    meter.start()
    started = time.perf_counter()
    await receipts.receive(engine, ReceiptIn(receipt_id=receipt_id, sku=sku, quantity=n),
                           settings, hand_off=OutboxDeliverer(engine, client, settings).deliver)
    await wait_closed(client, n)
    seconds = time.perf_counter() - started
    cpu = meter.stop()

    params = {"sku": sku, "receipt_id": receipt_id}
    async with engine.connect() as conn:
        shipped, handovers = (await conn.execute(sa.text(
            """
            SELECT (SELECT sum(shipped_quantity) FROM order_lines WHERE sku = :sku),
                   (SELECT sum(t.handovers) FROM sim_warehouse_tasks t
                    JOIN allocations a ON a.id = t.allocation_id WHERE a.sku = :sku)
            """), params)).one()
        waits = (await conn.execute(sa.text(
            """
            SELECT extract(epoch FROM n.sent_at - r.received_at) AS seconds
            FROM notifications n JOIN receipts r ON r.receipt_id = :receipt_id
            WHERE n.event = 'allocated' AND n.sku = :sku AND n.sent_at IS NOT NULL
            """), params)).scalars().all()
    assert shipped == n and handovers == n, (shipped, handovers)
    infra.stop(proc)
    return {"lines": n, "seconds": seconds, "per_second": n / seconds,
            "workflow_starts_per_second": n / start_seconds,
            "allocation_message_waits": [float(w) for w in waits], **cpu}


def combined_lifecycles(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The lifecycle's runs as one, with the receipt-to-message waits of all its lines."""
    waits = [w for r in runs for w in r.pop("allocation_message_waits")]
    q = statistics.quantiles(waits, n=100)
    lines = sum(r["lines"] for r in runs)
    return {**combined(runs, "lines"),
            "workflow_starts_per_second": lines / sum(r["lines"] / r["workflow_starts_per_second"]
                                                      for r in runs),
            "allocation_messages": len(waits), "allocation_message_p50_s": q[49],
            "allocation_message_p95_s": q[94], "allocation_message_max_s": max(waits)}


async def bench_activities(infra: Infra, engine: AsyncEngine, n: int,
                           concurrency: int = 50) -> dict[str, Any]:
    """The lifecycle's own work without Temporal: each of n allocated lines runs the
    activities of its timed phase (the "allocated" message, pick, pack, label, ship, the
    "dispatched" message) in this process, as the worker would. Its CPU per line, beside
    the ceiling's, says how much of the lifecycle's cost is ours rather than Temporal's."""
    settings = Settings(_env_file=None, database_url=infra.database_url,
                        warehouse_pick_seconds=0, warehouse_pack_seconds=0,
                        warehouse_carrier_seconds=0)
    await inventory.put_product(engine, "BENCH-ACT", ProductIn())
    await seed_waiting_lines(engine, "BENCH-ACT", n, "act-")
    await receipts.receive(engine, ReceiptIn(receipt_id="ACT-1", sku="BENCH-ACT", quantity=n),
                           settings)
    async with engine.begin() as conn:
        # No workflow will ever read these lines' messages: take them off the outbox so
        # later scenarios' waits for a drained outbox are not held up by them.
        await conn.execute(sa.text(
            "UPDATE outbox SET delivered_at = now() WHERE delivered_at IS NULL AND line_id IN "
            "(SELECT id FROM order_lines WHERE sku = 'BENCH-ACT')"))
        allocations = (await conn.execute(sa.text(
            "SELECT a.id, a.line_id, a.quantity FROM allocations a "
            "JOIN order_lines l ON l.id = a.line_id WHERE l.sku = 'BENCH-ACT'"))).all()
    line_engine = create_engine(settings)
    dispatch = DispatchActivities(line_engine, simulated_warehouse(line_engine, settings))
    notify = NotifyActivities(Notifier(line_engine, settings), None, "none")  # type: ignore[arg-type]
    env = ActivityEnvironment()
    slots = asyncio.Semaphore(concurrency)

    async def one_line(allocation_id: Any, line_id: Any, quantity: int) -> None:
        def notice(event: str) -> LineNotice:
            return LineNotice(str(line_id), event, f"{line_id}:{event}:{allocation_id}",
                              datetime.now(UTC), None, 0, quantity)

        step = StepInput(str(allocation_id), str(line_id), "BENCH-ACT", quantity)
        async with slots:
            await env.run(notify.notify_line, notice("allocated"))
            for activity_method in (dispatch.pick, dispatch.pack, dispatch.label,
                                    dispatch.ship):
                await env.run(activity_method, step)
            await env.run(notify.notify_line, notice("dispatched"))

    meter = CpuMeter(postgres=infra.postgres.pid())  # type: ignore[union-attr]
    meter.start()
    cpu_before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_line(*a) for a in allocations))
    seconds = time.perf_counter() - started
    own_cpu = time.process_time() - cpu_before
    postgres = meter.stop()["postgres_cpu_share"] * seconds
    await dispose(line_engine)
    async with engine.connect() as conn:
        shipped = (await conn.execute(sa.text(
            "SELECT sum(shipped_quantity) FROM order_lines WHERE sku = 'BENCH-ACT'"))).scalar()
    assert shipped == n, shipped
    return {"lines": n, "seconds": seconds, "per_second": n / seconds,
            "process_cpu_ms_per_line": own_cpu * 1000 / n,
            "postgres_cpu_ms_per_line": postgres * 1000 / n}


# --- 3. allocation ----------------------------------------------------------------------


async def bench_allocation(infra: Infra, engine: AsyncEngine, n: int) -> dict[str, Any]:
    namespace = "bench-allocation"
    settings = services_settings(infra, namespace)
    proc = infra.worker(namespace)
    await inventory.put_product(engine, "BENCH-AL", ProductIn())
    wait_idle(proc.pid)
    idle = {"waiting": 0, "worker_rss_mb": rss(proc.pid) / 2**20,
            "server_rss_mb": infra.server_rss() / 2**20}
    await seed_waiting_lines(engine, "BENCH-AL", n, "al-")
    start_seconds = await wait_outbox_drained(engine)
    # Every line has started, and thousands are still sending their "backordered" message
    # (minutes more on 2 cores). The transaction is the database's work alone: time it
    # with the worker paused and the server idle, so that backlog does not sit in it.
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_idle(infra.temporal.pid)  # type: ignore[union-attr, arg-type]
        started = time.perf_counter()
        handed: list[int] = []
        got = await receipts.receive(engine, ReceiptIn(receipt_id="AL-1", sku="BENCH-AL",
                                                       quantity=n), settings,
                                     hand_off=_keep(handed))
        transaction = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGCONT)
    assert len(got.receipt.allocations) == n and not handed  # all left to the relay
    await wait_outbox_drained(engine)
    handoff = time.perf_counter() - started
    # Every line's workflow has now run and holds its allocation: the worker caches all
    # n of them (`make bench-scale` measures settled waiting lines at 10k and 50k).
    loaded = {"waiting": n, "state": "just allocated", "worker_rss_mb": rss(proc.pid) / 2**20,
              "server_rss_mb": infra.server_rss() / 2**20}
    proc.kill()  # the 10,000 dispatches that follow are not part of this figure
    proc.wait()
    return {"waiting_lines": n, "transaction_seconds": transaction,
            "all_signalled_seconds": handoff, "workflow_starts_per_second": n / start_seconds,
            "memory": [idle, loaded]}


# --- 4. intake --------------------------------------------------------------------------


async def bench_intake(infra: Infra, engine: AsyncEngine, seconds: float,
                       concurrency: int) -> dict[str, Any]:
    namespace = "bench-intake"
    worker = infra.worker(namespace)
    api, port = infra.api(namespace)
    latencies: list[float] = []
    errors: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {infra.admin_key(namespace)}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers=headers) as http:
        for sku, on_hand in (("BENCH-IN-A", 1_000_000_000), ("BENCH-IN-B", 0)):
            assert (await http.put(f"/products/{sku}", json={})).status_code in (200, 201)
            await http.put(f"/inventory/{sku}", json={"on_hand": on_hand})
        counter = iter(range(10**9))
        deadline = time.perf_counter() + seconds

        async def client_loop() -> None:
            while time.perf_counter() < deadline:
                number = next(counter)
                body = {"channel": "web", "order_number": f"IN-{number}",
                        "customer": {"id": f"c{number % 500}"},
                        "lines": [{"sku": "BENCH-IN-A", "quantity": 1, "unit_price": "9.50"},
                                  {"sku": "BENCH-IN-B", "quantity": 1, "unit_price": "4.25"}]}
                sent = time.perf_counter()
                r = await http.post("/orders", json=body)
                if r.status_code == 201:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    infra.stop(api)
    infra.stop(worker)
    q = statistics.quantiles(latencies, n=100)
    return {"concurrency": concurrency, "orders": len(latencies), "seconds": elapsed,
            "per_second": len(latencies) / elapsed, "p50_ms": q[49] * 1000,
            "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000, "errors": errors}


# --- 5. scale ---------------------------------------------------------------------------


async def bench_scale(infra: Infra, engine: AsyncEngine, sizes: list[int]) -> dict[str, Any]:
    namespace = "bench-scale"
    settings = services_settings(infra, namespace)
    proc = infra.worker(namespace)
    client = await connect(infra, namespace)
    await inventory.put_product(engine, "BENCH-SC", ProductIn())
    wait_idle(proc.pid)
    points = [{"waiting": 0, "worker_rss_mb": rss(proc.pid) / 2**20,
               "server_rss_mb": infra.server_rss() / 2**20}]
    waiting = 0
    for size in sizes:
        await seed_waiting_lines(engine, "BENCH-SC", size - waiting, f"sc{size}-")
        started = time.perf_counter()
        await wait_outbox_drained(engine)
        start_seconds = time.perf_counter() - started
        await wait_backorders_announced(engine, "BENCH-SC", size)
        settle(proc.pid, infra)
        point = {"waiting": size, "worker_rss_mb": rss(proc.pid) / 2**20,
                 "server_rss_mb": infra.server_rss() / 2**20,
                 "workflow_starts_per_second": (size - waiting) / start_seconds}
        t0 = time.perf_counter()
        handed: list[int] = []
        await receipts.receive(engine, ReceiptIn(receipt_id=f"SC-{size}", sku="BENCH-SC",
                                                 quantity=100), settings, hand_off=_keep(handed))
        point["allocate_100_seconds"] = time.perf_counter() - t0
        await OutboxDeliverer(engine, client, settings).deliver(handed)
        waiting = size - 100
        await seed_waiting_lines(engine, "BENCH-SC", 100, f"sc{size}-refill-")
        waiting = size
        points.append(point)
    infra.stop(proc)
    return {"points": points}


# --- report -----------------------------------------------------------------------------


def _cpu_ms(figures: dict[str, Any]) -> float:
    count = figures.get("lines") or figures["workflows"]
    return sum(v for k, v in figures.items() if k.endswith("_cpu_share")) \
        * figures["seconds"] * 1000 / count


def cpu_text(figures: dict[str, Any]) -> str:
    shares = {k.removesuffix("_cpu_share"): v for k, v in figures.items()
              if k.endswith("_cpu_share")}
    return "cores busy: " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items())


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    c, lc = results.get("ceiling"), results.get("lifecycle")
    if c:
        sides = " / ".join(f"{r:.1f}" for r in c.get("runs", []))
        rows.append(("ceiling: bare line-shaped workflows/s", f"{c['per_second']:.1f}",
                     f"{c['workflows']} workflows in {c['seconds']:.1f} s"
                     + (f" (first / last {sides})" if sides else "")
                     + f"; {cpu_text(c)}"))
    cv = results.get("ceiling_visible")
    if cv:
        rows.append(("ceiling with a line's search attributes, wf/s", f"{cv['per_second']:.1f}",
                     f"{cv['workflows']} workflows in {cv['seconds']:.1f} s; {cpu_text(cv)}"))
    if lc:
        ratio = lc["per_second"] / c["per_second"] if c else float("nan")
        runs = " / ".join(f"{r:.1f}" for r in lc.get("runs", []))
        rows.append(("lifecycle: lines dispatched/s", f"{lc['per_second']:.1f}",
                     f"{lc['lines']} lines in {lc['seconds']:.1f} s"
                     + (f" (first / second {runs})" if runs else "") + f"; {cpu_text(lc)}"))
        pairs = ""
        if c and len(c.get("runs", [])) == len(lc.get("runs", [])) > 1:
            pairs = "pairs " + " / ".join(f"{b / a:.2f}" for a, b in zip(c["runs"], lc["runs"],
                                                                        strict=True)) + "; "
        rows.append(("lifecycle / ceiling", f"{ratio:.2f}", f"{pairs}goal >= 0.60"))
        if cv:
            rows.append(("lifecycle / ceiling with search attributes",
                         f"{lc['per_second'] / cv['per_second']:.2f}",
                         "what the database and the line's own logic cost"))
        rows.append(("line workflow starts/s (relay)", f"{lc['workflow_starts_per_second']:.0f}",
                     ""))
        rows.append(("receipt to 'allocated' message p50 / p95 / max",
                     f"{lc['allocation_message_p50_s']:.1f} / {lc['allocation_message_p95_s']:.1f}"
                     f" / {float(lc['allocation_message_max_s']):.1f} s",
                     f"{lc['allocation_messages']} messages"))
    ac = results.get("activities")
    if ac:
        rows.append(("the lifecycle's activities alone, CPU per line",
                     f"{ac['process_cpu_ms_per_line']:.1f} ms",
                     f"one process, no Temporal: {ac['per_second']:.0f} lines/s; postgres "
                     f"{ac['postgres_cpu_ms_per_line']:.1f} ms per line"))
    if lc and c:
        rows.append(("CPU per line, lifecycle / ceiling",
                     f"{_cpu_ms(lc):.0f} / {_cpu_ms(c):.0f} ms",
                     "worker, server and postgres cores busy x seconds / lines"))
    al = results.get("allocation")
    if al:
        rows.append(("allocation transaction", f"{al['transaction_seconds'] * 1000:.0f} ms",
                     f"{al['waiting_lines']} waiting lines, worker paused; goal < 1000 ms"))
        rows.append(("allocation: every line signalled", f"{al['all_signalled_seconds']:.1f} s",
                     f"{al['waiting_lines'] / al['all_signalled_seconds']:.0f} signals/s, "
                     "beside the lines' backordered messages still going out"))
        rows.append(("allocation: line workflow starts/s (relay)",
                     f"{al['workflow_starts_per_second']:.0f}", ""))
        for p in al["memory"]:
            rows.append((f"memory: {p['waiting']} {p.get('state', 'waiting')}, "
                         "worker / server RSS",
                         f"{p['worker_rss_mb']:.0f} / {p['server_rss_mb']:.0f} MB", ""))
    it = results.get("intake")
    if it:
        rows.append(("intake: orders/s", f"{it['per_second']:.1f}",
                     f"concurrency {it['concurrency']}, {it['orders']} orders, "
                     f"errors {it['errors'] or 'none'}"))
        rows.append(("intake latency p50 / p95 / p99",
                     f"{it['p50_ms']:.0f} / {it['p95_ms']:.0f} / {it['p99_ms']:.0f} ms", ""))
    sp = results.get("intake_spike")
    if sp:
        cap = sp.get("capacity")
        if cap:
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in cap["cpu_ms_per_order"].items())
            rows.append(("intake-spike capacity: accepted/s, closed loop",
                         f"{cap['accepted_per_second']:.0f}",
                         f"{cap['clients']} clients, p50/p95/p99 {cap['p50_ms']:.0f}/"
                         f"{cap['p95_ms']:.0f}/{cap['p99_ms']:.0f} ms, "
                         f"{cap['cores_busy']:.2f} cores busy; CPU ms per order: {cpu}"))
        for name in ("sustained", "burst"):
            f = sp[name]
            rows.append((f"intake-spike {name}: accepted/s of offered",
                         f"{f['accepted_per_second']:.0f} / {f['offered_per_second']:.0f}",
                         f"p50/p95/p99 {f['p50_ms']:.0f}/{f['p95_ms']:.0f}/{f['p99_ms']:.0f} ms, "
                         f"drain {f['drain_seconds']:.1f} s, statuses {f['statuses']}, "
                         f"shed by client {f['shed_by_client']}"))
        rows.append(("intake-spike: Temporal bare starts/s (drain ceiling)",
                     f"{sp['temporal_bare_starts_per_second']:.0f}", "same run"))
    db = results.get("dashboard")
    if db:
        for name, f in db["pages"].items():
            rows.append((f"dashboard: {name} p50 / p95", f"{f['p50_ms']:.0f} / {f['p95_ms']:.0f} ms",
                         f"{db['waiting_lines']} waiting, {db['history_lines']} shipped; "
                         "goal < 500 ms"))
    sc = results.get("scale")
    if sc:
        for p in sc["points"]:
            extra = ""
            if "allocate_100_seconds" in p:
                extra = (f"allocate 100 in {p['allocate_100_seconds'] * 1000:.0f} ms, "
                         f"{p['workflow_starts_per_second']:.0f} starts/s")
            rows.append((f"scale: {p['waiting']} waiting, worker / server RSS",
                         f"{p['worker_rss_mb']:.0f} / {p['server_rss_mb']:.0f} MB", extra))
    rows.extend(eta_honesty_rows(results.get("eta_honesty")))
    rows.extend(forecast_rows(results.get("forecast")))
    return render(rows)


async def main(args: argparse.Namespace) -> None:
    infra = Infra(namespaces=NAMESPACES, keep=args.keep)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "parameters": vars(args),
    }
    began = time.perf_counter()
    if "forecast" in args.scenarios:  # timed on CPU: the machine to itself, no servers yet
        results["forecast"] = await bench_forecast()
    if not set(args.scenarios) - SERVERLESS:
        report(results, began)
        return
    try:
        infra.start()
        engine = create_engine(Settings(_env_file=None, database_url=infra.database_url,
                                        db_pool_size=20))
        def on(name: str) -> bool:
            return name in args.scenarios

        # Two pairs, in the order ceiling, lifecycle, ..., lifecycle, ceiling: a machine
        # that slows down or speeds up mid-run moves both sides of the ratio alike, and
        # the ratio rests on two runs of each. On this machine one run's CPU per
        # workflow swings by up to a sixth either way from the next, identical run's;
        # a single pair put the ratio anywhere from 0.5 to 0.7. Each ceiling run is the
        # lifecycle's N woken at once: the same backlog, and a timed window as long.
        half = max(args.lines // 2, 1)
        ceilings: list[dict[str, Any]] = []
        lifecycles: list[dict[str, Any]] = []
        if on("ceiling"):
            ceilings.append(await bench_ceiling(infra, args.lines, "bench-ceiling"))
        if on("lifecycle"):
            lifecycles.append(await bench_lifecycle(infra, engine, args.lines, run=1))
        if on("visible"):
            results["ceiling_visible"] = await bench_ceiling(
                infra, half, "bench-ceiling-visible", visible=True)
        if on("activities"):
            results["activities"] = await bench_activities(infra, engine, args.lines)
        if on("lifecycle"):
            lifecycles.append(await bench_lifecycle(infra, engine, args.lines, run=2))
            results["lifecycle"] = combined_lifecycles(lifecycles)
        if on("ceiling"):
            ceilings.append(await bench_ceiling(infra, args.lines, "bench-ceiling-after"))
            results["ceiling"] = combined(ceilings)
        if on("allocation"):
            results["allocation"] = await bench_allocation(infra, engine, args.allocation_lines)
        if on("intake"):
            results["intake"] = await bench_intake(infra, engine, args.intake_seconds,
                                                   args.concurrency)
        if on("intake-spike"):
            results["intake_spike"] = await bench_intake_spike(
                infra, engine, sustained_rate=args.sustained_rate, sustained_seconds=20,
                burst_rate=args.burst_rate, burst_seconds=args.burst_seconds)
        if on("dashboard"):
            results["dashboard"] = await bench_dashboard(infra, engine, args.dashboard_lines)
        if on("eta-honesty"):  # pure simulation: no database, no Temporal
            results["eta_honesty"] = bench_eta_honesty()
        if on("scale") and args.scale:
            results["scale"] = await bench_scale(infra, engine, args.scale)
        await dispose(engine)
    finally:
        infra.shutdown()
    report(results, began)


def report(results: dict[str, Any], began: float) -> None:
    results["total_seconds"] = time.perf_counter() - began
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(table(results))
    print(f"\n{results['total_seconds']:.0f} s in all; figures written to {out}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--allocation-lines", type=int, default=10_000)
    parser.add_argument("--intake-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--dashboard-lines", type=int, default=10_000)
    parser.add_argument("--sustained-rate", type=float, default=100.0,
                        help="intake-spike: orders/s offered for 20 s")
    parser.add_argument("--burst-rate", type=float, default=400.0,
                        help="intake-spike: orders/s offered in the burst")
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=lambda s: [int(x) for x in s.split(",")],
                        default=[],
                        help="waiting-line counts to measure memory and allocation time at "
                             "(none by default: the allocation scenario gives 0 and 10,000); "
                             "`make bench-scale` runs 10000,50000, about 15 minutes")
    parser.add_argument("--only", help="comma-separated scenarios to run, of "
                        + ", ".join(SCENARIOS + DIAGNOSTICS))
    parser.add_argument("--diagnostics", action="store_true",
                        help="also run the diagnostics (about a minute more)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's PostgreSQL and Temporal data and process logs "
                             "(removed at the end by default)")
    args = parser.parse_args()
    if args.only:
        args.scenarios = args.only.split(",")
        unknown = set(args.scenarios) - set(SCENARIOS + DIAGNOSTICS)
        if unknown:
            parser.error(f"--only: no scenario called {', '.join(sorted(unknown))}")
    else:
        args.scenarios = SCENARIOS + (DIAGNOSTICS if args.diagnostics else [])
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
