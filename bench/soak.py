"""A bounded chaos soak (`make soak`; minutes, loopback only): two API processes and
three workers on one embedded PostgreSQL and one Temporal dev server take the mixed load
of `bench.mixed` for `--seconds`, while faults are injected one after another at random
intervals: a random worker SIGKILLed, a random API process SIGKILLed, PostgreSQL
stopped in `immediate` mode (a crash: recovery replays its WAL), or the Temporal dev
server SIGKILLed (each kind once, in a random order, before any kind again); each comes
back after a few seconds on its own port and data directory. From each kill we time how
long until every API answers /health/ready with 200 and every allocation that was on
its way when the fault struck has moved on (the larger: the time to recover); the next
fault comes a random gap after that. When the time is up the load stops (a fault under
way recovers first), what still waits gets its stock, and once all has settled the
invariants are checked and the figures printed. Exits 1 on any violation.

    python -m bench.soak --seconds 180 --seed 1 [--kinds worker,api,postgres,temporal]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.infra import Infra
from bench.mixed import (
    Cluster,
    Fleet,
    MixedLoad,
    identity,
    settle,
    verify,
    work_by_worker,
)
from tests.support import scalar

NAMESPACE = "soak"
KINDS = ("worker", "api", "postgres", "temporal")
RECOVERY_LIMIT = 120.0
"""A fault not recovered from within this long is reported as such (the final settle
and the invariants still decide whether anything went wrong)."""
SETTLE_LIMIT = 300.0
LATE_WORKER_SECONDS = 30.0
"""A worker started this close to the end of the load may have found nothing left to do."""


@dataclass
class Fault:
    kind: str
    target: str
    at: float
    """Seconds into the load."""
    down: float
    """Seconds from the kill until the process was back (listening, or polling)."""
    ready: float | None = None
    """Seconds from the kill until every API answered /health/ready with 200."""
    moved_on: float | None = None
    """Seconds from the kill until every allocation then on its way had moved on."""
    in_flight: int = 0

    @property
    def recovered(self) -> float | None:
        if self.ready is None or self.moved_on is None:
            return None
        return max(self.ready, self.moved_on)


async def snapshot(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Allocations on their way (id, status), to see them move on after a fault."""
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT CAST(id AS text), status FROM allocations "
                "WHERE status NOT IN ('dispatched', 'cancelled')"))).all()
        return [(r[0], r[1]) for r in rows]
    except Exception:
        return []


async def still_stuck(engine: AsyncEngine, before: list[tuple[str, str]]) -> int | None:
    """How many of `before` have not changed status yet (None: the database is down)."""
    if not before:
        return 0
    ids, statuses = zip(*before, strict=True)
    try:
        return await scalar(engine, """
            SELECT count(*) FROM allocations a
            JOIN unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[])) AS s(id, status)
              ON a.id = s.id WHERE a.status = s.status""", ids=list(ids), statuses=list(statuses))
    except Exception:
        return None


class Chaos:
    def __init__(self, cluster: Cluster, infra: Infra, rng: random.Random, kinds: list[str],
                 gaps: tuple[float, float], downtime: tuple[float, float]) -> None:
        self.cluster = cluster
        self.infra = infra
        self.rng = rng
        self.kinds = kinds
        self.gaps = gaps
        self.downtime = downtime
        self.faults: list[Fault] = []
        self._bag: list[str] = []

    def next_kind(self) -> str:
        """Random, but every kind once (in a random order) before any kind again."""
        if not self._bag:
            self._bag = self.rng.sample(self.kinds, len(self.kinds))
        return self._bag.pop()

    async def run(self, began: float, stop_at: float, at_least: int = 0) -> None:
        """Faults one after another until `stop_at` (and `at_least` of them): a random
        gap, a fault, its recovery."""
        while True:
            gap = self.rng.uniform(*self.gaps)
            if time.monotonic() + gap >= stop_at and len(self.faults) >= at_least:
                return
            await asyncio.sleep(gap)
            fault = await self.inject(self.next_kind(), began)
            self.faults.append(fault)
            print(f"  fault {len(self.faults)}: {describe(fault)}", flush=True)

    async def watch(self, fault: Fault, before: list[tuple[str, str]], struck: float) -> None:
        """From the kill on: when every API is ready again, when everything that was on
        its way has moved on."""
        engine = self.cluster.engine
        assert engine is not None
        while time.monotonic() - struck < RECOVERY_LIMIT:
            if fault.ready is None and await self.cluster.all_ready():
                fault.ready = time.monotonic() - struck
            if fault.moved_on is None and await still_stuck(engine, before) == 0:
                fault.moved_on = time.monotonic() - struck
            if fault.recovered is not None:
                return
            await asyncio.sleep(0.25)

    async def inject(self, kind: str, began: float) -> Fault:
        cluster, engine = self.cluster, self.cluster.engine
        assert engine is not None
        before = await snapshot(engine)
        pause = self.rng.uniform(*self.downtime)
        struck = time.monotonic()
        fault = Fault(kind, "", at=struck - began, down=0.0, in_flight=len(before))
        restart: Callable[[], Awaitable[Any]]
        if kind in ("worker", "api"):
            procs = cluster.workers if kind == "worker" else cluster.apis
            slot = self.rng.randrange(len(procs))
            victim = procs[slot]
            fault.target = f"{victim.name} ({f'pid {victim.pid}' if kind == 'worker' else f':{victim.port}'})"
            Cluster.kill(victim)
            restart = functools.partial(
                cluster.restart_worker if kind == "worker" else cluster.restart_api, slot)
        elif kind == "postgres":
            postgres = self.infra.postgres
            assert postgres is not None
            fault.target = f"postgres :{postgres.port}"
            await asyncio.to_thread(postgres.stop, "immediate")
            restart = functools.partial(asyncio.to_thread, postgres.start)
        elif kind == "temporal":
            temporal = self.infra.temporal
            assert temporal is not None
            fault.target = f"temporal {temporal.address}"
            temporal.kill()
            restart = functools.partial(asyncio.to_thread, temporal.start)
        else:
            raise ValueError(kind)
        watching = asyncio.create_task(self.watch(fault, before, struck))
        await asyncio.sleep(pause)
        await restart()
        fault.down = time.monotonic() - struck
        await watching
        return fault


def describe(f: Fault) -> str:
    def secs(v: float | None) -> str:
        return f"{v:.1f}s" if v is not None else f">{RECOVERY_LIMIT:.0f}s"

    return (f"{f.kind:<8} {f.target:<24} at {f.at:6.1f}s  back up {f.down:4.1f}s  "
            f"APIs ready {secs(f.ready)}  {f.in_flight} in-flight moved on {secs(f.moved_on)}  "
            f"recovered {secs(f.recovered)}")


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    infra = Infra(namespaces=[NAMESPACE], keep=args.keep)
    report: dict[str, Any] = {"seed": args.seed, "seconds": args.seconds}
    began_all = time.monotonic()
    await asyncio.to_thread(infra.start)
    cluster = Cluster(infra, NAMESPACE, apis=args.apis, workers=args.workers)
    fleet: Fleet | None = None
    try:
        await cluster.start()
        assert cluster.engine is not None and cluster.client is not None
        report["startup_seconds"] = round(time.monotonic() - began_all, 1)
        print(f"soak: {args.apis} APIs :{cluster.api_ports}, {args.workers} workers, "
              f"up in {report['startup_seconds']}s; load and faults for {args.seconds}s "
              f"(seed {args.seed}, data in {infra.dir})", flush=True)
        fleet = Fleet(cluster.api_ports, cluster.key, give_up_after=90)
        load = MixedLoad(fleet, args.seed, prefix="SOAK")
        await load.setup()

        began = time.monotonic()
        stop_at = began + args.seconds
        chaos = Chaos(cluster, infra, rng, args.kinds, (args.min_gap, args.max_gap),
                      (args.min_down, args.max_down))
        chaos_task = asyncio.create_task(chaos.run(began, stop_at, args.min_faults))
        await load.run(clients=args.clients, pause=args.pause,
                       until=lambda: time.monotonic() >= stop_at and chaos_task.done())
        load_ended = time.monotonic()
        await chaos_task

        for w in cluster.workers:
            assert w.alive, f"{w.name} died on its own: see {infra.dir}"
        topped_up = await load.top_up(cluster.engine)
        violations: list[str] = []
        settled: float | None = None
        settle_began = time.monotonic()
        try:
            settled = await settle(cluster.engine, cluster.client, within=SETTLE_LIMIT)
        except AssertionError as exc:
            violations.append(f"did not settle: {exc}")
        violations += await verify(cluster.engine, load.stats)
        violations += [f"unexpected answer: {u}" for u in load.stats.unexpected]
        work = await work_by_worker(cluster.engine, cluster.client)
        notes = []
        for w in cluster.workers:
            if work.activities[identity(w.pid)] == 0:
                if w.started > load_ended - LATE_WORKER_SECONDS:
                    notes.append(f"{w.name} (started {load_ended - w.started:.0f}s before the "
                                 "load ended) did no activity")
                else:
                    violations.append(f"{w.name} (pid {w.pid}) alive but did no activity")

        report.update(
            load_seconds=round(load_ended - began, 1),
            load=load.stats.figures(),
            clients=asdict(fleet.stats) | {"answered_by": dict(fleet.stats.answered_by)},
            lines_in_ledger=await scalar(cluster.engine, "SELECT count(*) FROM order_lines"),
            orders_in_ledger=await scalar(cluster.engine, "SELECT count(*) FROM orders"),
            faults=[asdict(f) | {"recovered": f.recovered} for f in chaos.faults],
            faults_by_kind=dict(Counter(f.kind for f in chaos.faults)),
            top_up_units=topped_up,
            settle_seconds=round(settled, 1) if settled is not None else None,
            settle_wall_seconds=round(time.monotonic() - settle_began, 1),
            workers={w.name + f" pid {w.pid}" + ("" if w.alive else " (killed)"):
                     {"activities": work.activities[identity(w.pid)],
                      "workflow_tasks": work.workflow_tasks[identity(w.pid)]}
                     for w in cluster.every_worker},
            line_workflows=work.workflows,
            violations=violations,
            notes=notes,
        )
        print_report(report, chaos.faults)
        return report
    finally:
        if fleet is not None:
            await fleet.close()
        await cluster.close()
        if report.get("violations", True):  # failed or broke off: keep the logs to read
            infra.keep = True
        await asyncio.to_thread(infra.shutdown)
        report["total_seconds"] = round(time.monotonic() - began_all, 1)
        print(f"total {report['total_seconds']}s", flush=True)


def print_report(report: dict[str, Any], faults: list[Fault]) -> None:
    load, clients = report["load"], report["clients"]
    print(f"\nload for {report['load_seconds']}s: {load['orders_accepted']} orders accepted "
          f"of {load['orders_sent']} sent ({load['orders_replayed']} answered on a retry as "
          f"replays), {load['lines']} lines, {load['units']} units; {load['receipts']} receipts "
          f"({load['receipt_units']} units), {load['counts']} counts ({load['counts_refused']} "
          f"refused), {load['cancels']} cancellations; ledger: {report['orders_in_ledger']} "
          f"orders, {report['lines_in_ledger']} lines")
    print(f"clients: {clients['requests']} requests, {clients['retries']} retries "
          f"({clients['failovers']} to another API; {clients['refused']} refused, "
          f"{clients['torn']} torn, {clients['not_now']} answered 5xx not-now), "
          f"{clients['gave_up']} given up")
    print(f"faults injected: {len(faults)} {report['faults_by_kind']}")
    for i, f in enumerate(faults, 1):
        print(f"  {i}. {describe(f)}")
    recovered = [f.recovered for f in faults if f.recovered is not None]
    if recovered:
        print(f"time to recover: median {statistics.median_high(recovered):.1f}s, "
              f"max {max(recovered):.1f}s ({len(faults) - len(recovered)} not within "
              f"{RECOVERY_LIMIT:.0f}s)")
    print(f"top-up {report['top_up_units']} units; settled in {report['settle_seconds']}s; "
          f"{report['line_workflows']} line workflows")
    for name, done in report["workers"].items():
        print(f"  {name}: {done['activities']} activity tasks, {done['workflow_tasks']} "
              "workflow tasks (from the histories)")
    for note in report["notes"]:
        print(f"  note: {note}")
    if report["violations"]:
        print("INVARIANTS VIOLATED:")
        for v in report["violations"]:
            print(f"  - {v}")
    else:
        print("invariants OK: every line shipped or cancelled in full and its workflow "
              "completed, nothing oversold, nothing shipped twice, the ledger balances, "
              "every order answered as taken is there once, every live worker did work")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180, help="load and faults for this long")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"faults to choose from (comma-separated; default {','.join(KINDS)})")
    p.add_argument("--min-gap", type=float, default=5, help="seconds between faults, at least")
    p.add_argument("--max-gap", type=float, default=15, help="and at most")
    p.add_argument("--min-faults", type=int, default=0,
                   help="keep the load and faults going until this many faults were injected")
    p.add_argument("--min-down", type=float, default=1, help="seconds a killed part stays down")
    p.add_argument("--max-down", type=float, default=5)
    p.add_argument("--apis", type=int, default=2)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--pause", type=float, default=0.1, help="each client's pause between requests")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--keep", action="store_true", help="keep data and process logs")
    args = p.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown or not args.kinds:
        p.error(f"--kinds: choose from {', '.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = asyncio.run(soak(args))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 1 if report.get("violations") else 0


if __name__ == "__main__":
    sys.exit(main())
