"""Scale-out, proven on one machine: two API processes and three workers share one
PostgreSQL and one Temporal dev server; a mixed load of orders, receipts, stock counts
and cancellations goes through both APIs while one worker and one API are SIGKILLed
mid-flight (clients send what the dead API did not answer to the other one, unchanged).
Afterwards every line has completed, nothing was oversold or shipped twice, the ledger
balances, and every surviving worker did part of the work, as the workflow histories
show (the identity on each completed activity task)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.infra import Infra
from bench.mixed import (
    Cluster,
    Fleet,
    MixedLoad,
    identity,
    scrape_activity_count,
    settle,
    verify,
    work_by_worker,
)
from tests.support import scalar

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

NAMESPACE = "scale"
SEED = 26
OPS = 200
KILL_AFTER_OPS = 80


async def kill_mid_flight(cluster: Cluster, load: MixedLoad, fleet: Fleet) -> dict[str, object]:
    """Once a fair part of the load is in and parcels are on their way (some shipped,
    some still in the warehouse), SIGKILL worker 0 and API 0 together, as soon as a
    request to API 0 is awaiting its answer."""
    assert cluster.engine is not None
    worker, api = cluster.workers[0], cluster.apis[0]
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "no parcels in flight to kill the processes under"
        if load.ops_done >= KILL_AFTER_OPS:
            shipped = await scalar(cluster.engine, "SELECT count(*) FROM sim_warehouse_tasks "
                                                   "WHERE handed_over_at IS NOT NULL")
            in_flight = await scalar(cluster.engine, "SELECT count(*) FROM allocations "
                                                     "WHERE status NOT IN ('dispatched', 'cancelled')")
            if shipped and in_flight:
                break
        await asyncio.sleep(0.1)
    for _ in range(2000):  # up to a few seconds; without one, kill between requests
        if fleet.in_flight[api.port]:
            break
        await asyncio.sleep(0.002)
    Cluster.kill(worker)
    Cluster.kill(api)
    return {"at_op": load.ops_done, "shipped_before": shipped, "in_flight": in_flight,
            "worker": worker.pid, "api": api.port}


async def test_two_apis_and_three_workers_ride_out_a_killed_worker_and_a_killed_api(tmp_path):
    began = time.monotonic()
    infra = Infra(namespaces=[NAMESPACE], workdir=tmp_path)
    await asyncio.to_thread(infra.start)
    cluster = Cluster(infra, NAMESPACE, apis=2, workers=3)
    fleet: Fleet | None = None
    passed = False
    try:
        await cluster.start()
        assert cluster.engine is not None and cluster.client is not None
        started = time.monotonic() - began
        fleet = Fleet(cluster.api_ports, cluster.key)
        load = MixedLoad(fleet, SEED)
        await load.setup()

        load_began = time.monotonic()
        killer = asyncio.create_task(kill_mid_flight(cluster, load, fleet))
        await load.run(ops=OPS, clients=4)
        killed = await killer
        load_seconds = time.monotonic() - load_began
        topped_up = await load.top_up(cluster.engine)
        settled = await settle(cluster.engine, cluster.client, within=180)

        violations = await verify(cluster.engine, load.stats)
        work = await work_by_worker(cluster.engine, cluster.client)
        survivors = [w for w in cluster.every_worker if w.alive]
        metrics = {w.name: await scrape_activity_count(w.port) for w in survivors}
        lines = await scalar(cluster.engine, "SELECT count(*) FROM order_lines")

        print(f"\nscale-out: 2 APIs, 3 workers; servers and processes up in {started:.1f}s")
        print(f"load: {OPS} operations in {load_seconds:.1f}s, {load.stats.figures()}, "
              f"{lines} lines in the ledger, top-up {topped_up} units")
        print(f"SIGKILLed worker pid {killed['worker']} and API :{killed['api']} after "
              f"{killed['at_op']} operations, {killed['in_flight']} allocations in flight")
        f = fleet.stats
        print(f"clients: {f.requests} requests, {f.retries} retries ({f.failovers} to the other "
              f"API; {f.torn} torn mid-request, {f.refused} refused), answers by port "
              f"{dict(f.answered_by)}")
        print(f"settled {settled:.1f}s after the load; {work.workflows} line workflows completed")
        for w in cluster.every_worker:
            state = "alive" if w.alive else "SIGKILLed"
            print(f"  {w.name} pid {w.pid} ({state}): {work.activities[identity(w.pid)]} activity "
                  f"tasks, {work.workflow_tasks[identity(w.pid)]} workflow tasks (histories)"
                  + (f", {metrics[w.name]:.0f} activities (own metrics)" if w.alive and
                     metrics.get(w.name) is not None else ""))
        print(f"total {time.monotonic() - began:.1f}s")

        assert not violations, violations
        assert not load.stats.unexpected, load.stats.unexpected[:10]
        assert load.stats.orders_accepted == load.stats.orders_sent
        assert f.gave_up == 0
        assert f.failovers > 0, "no request had to go to the other API"
        assert len(survivors) == 2
        for w in survivors:
            assert work.activities[identity(w.pid)] > 0, f"{w.name} did no activity"
            assert work.workflow_tasks[identity(w.pid)] > 0, f"{w.name} ran no workflow task"
        # Nothing completed under a name we do not know (every worker is one of ours).
        ours = {identity(w.pid) for w in cluster.every_worker}
        assert set(work.activities) <= ours, set(work.activities) - ours
        passed = True
    finally:
        if fleet is not None:
            await fleet.close()
        await cluster.close()
        await asyncio.to_thread(infra.shutdown)
        if not passed:
            for log in sorted(tmp_path.glob("proc-*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
