"""Scale-out on one machine: several API and worker processes on one embedded PostgreSQL
and one Temporal dev server (`Cluster`), a seeded mixed load of orders, receipts, stock
counts and cancellations sent through all the APIs (`MixedLoad`), each request retried
on another API with the same body and idempotency key when one fails, as real clients
would (`Fleet`), and what must hold once everything has settled (`settle`, `verify`,
`work_by_worker`). Used by `tests/faults/test_scale_out.py` and `python -m bench.soak`."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus

from backorders.embedded.ports import free_port, port_in_use
from backorders.settings import Settings
from backorders.temporal import connect
from bench.infra import Infra
from tests.support import check_invariants, scalar

STEP_SECONDS = "0.5"
"""Each simulated warehouse step takes this long, so faults land on parcels in flight."""

PRODUCTS: dict[str, tuple[str, int]] = {
    # SKU: (allocation policy, units counted in at the start)
    "MIX-A": ("fifo", 12),
    "MIX-B": ("priority", 8),
    "MIX-C": ("fifo", 4),
    "MIX-D": ("priority", 0),
}
RETRY_STATUSES = (502, 503, 504)
"""Answers that say "not now": the request is sent again (to another API)."""


def identity(pid: int) -> str:
    """The identity a worker process's Temporal client has by default."""
    return f"{pid}@{socket.gethostname()}"


# --- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    role: str
    slot: int
    proc: subprocess.Popen[bytes]
    port: int
    """The API's port, or the worker's metrics port."""
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def name(self) -> str:
        return f"{self.role}-{self.slot}"


class Cluster:
    """`apis` API processes and `workers` worker processes of one namespace on `infra`'s
    servers; a slot's process can be SIGKILLed and started again (on the same port)."""

    def __init__(self, infra: Infra, namespace: str, *, apis: int = 2, workers: int = 3,
                 **extra: str) -> None:
        self.infra = infra
        self.namespace = namespace
        self.extra = {
            "WAREHOUSE_PICK_SECONDS": STEP_SECONDS, "WAREHOUSE_PACK_SECONDS": STEP_SECONDS,
            "WAREHOUSE_CARRIER_SECONDS": STEP_SECONDS, "OUTBOX_POLL_SECONDS": "0.2",
            "OUTBOX_INLINE_GRACE_SECONDS": "1", **extra}
        self.apis: list[Proc] = []
        self.workers: list[Proc] = []
        self.every_worker: list[Proc] = []
        """Every worker process ever started, killed ones too (their pids name them)."""
        self._api_ports = [free_port() for _ in range(apis)]
        self._metrics_ports = [free_port() for _ in range(workers)]
        self.key = ""
        self.client: Client | None = None
        self.engine: AsyncEngine | None = None

    @property
    def task_queue(self) -> str:
        return f"{self.namespace}-queue"

    @property
    def api_ports(self) -> list[int]:
        return list(self._api_ports)

    async def start(self) -> None:
        """Every process at once, then wait until the APIs listen and the workers poll."""
        self.key = await asyncio.to_thread(self.infra.admin_key, self.namespace)
        self.workers = [self._spawn_worker(slot) for slot in range(len(self._metrics_ports))]
        self.apis = [self._spawn_api(slot) for slot in range(len(self._api_ports))]
        assert self.infra.temporal is not None
        self.client = await connect(Settings(_env_file=None,
                                             temporal_address=self.infra.temporal.address,
                                             temporal_namespace=self.namespace), attempts=120)
        url = Settings(_env_file=None, database_url=self.infra.database_url).database_url
        # Pre-ping: our own view must survive the PostgreSQL restarts the soak causes.
        self.engine = create_async_engine(url, pool_pre_ping=True, pool_size=3)
        await asyncio.gather(*(self.wait_api(p) for p in self.apis),
                             *(self.wait_polling(p) for p in self.workers))

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    def _spawn_worker(self, slot: int) -> Proc:
        port = self._metrics_ports[slot]
        proc = self.infra.worker(self.namespace, name=f"worker-{slot}",
                                 WORKER_METRICS_ADDRESS=f"127.0.0.1:{port}", **self.extra)
        made = Proc("worker", slot, proc, port)
        self.every_worker.append(made)
        return made

    def _spawn_api(self, slot: int) -> Proc:
        proc, port = self.infra.start_api(self.namespace, port=self._api_ports[slot],
                                          name=f"api-{slot}", **self.extra)
        return Proc("api", slot, proc, port)

    async def wait_api(self, api: Proc, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while not port_in_use(api.port):
            if not api.alive:
                raise RuntimeError(f"{api.name} exited with {api.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{api.name} did not listen within {within:.0f}s")
            await asyncio.sleep(0.1)

    async def pollers(self) -> set[str]:
        """Identities polling the task queue for activities (the server remembers a
        poller for a few minutes after it goes)."""
        assert self.client is not None
        answer = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=self.namespace, task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
        return {p.identity for p in answer.pollers}

    async def wait_polling(self, worker: Proc, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            if not worker.alive:
                raise RuntimeError(f"{worker.name} exited with {worker.proc.returncode}")
            try:
                if identity(worker.pid) in await self.pollers():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{worker.name} did not poll within {within:.0f}s")
            await asyncio.sleep(0.5)

    @staticmethod
    def kill(proc: Proc) -> None:
        """SIGKILL: no shutdown, no goodbye to Temporal or PostgreSQL."""
        if proc.alive:
            proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait()

    async def restart_worker(self, slot: int) -> Proc:
        self.kill(self.workers[slot])
        self.workers[slot] = self._spawn_worker(slot)
        await self.wait_polling(self.workers[slot])
        return self.workers[slot]

    async def restart_api(self, slot: int) -> Proc:
        self.kill(self.apis[slot])
        self.apis[slot] = self._spawn_api(slot)
        await self.wait_api(self.apis[slot])
        return self.apis[slot]

    async def all_ready(self) -> bool:
        """Every API process answers /health/ready with 200 (database, schema, Temporal)."""
        async with httpx.AsyncClient(timeout=5) as http:
            for api in self.apis:
                try:
                    r = await http.get(f"http://127.0.0.1:{api.port}/health/ready")
                except httpx.HTTPError:
                    return False
                if r.status_code != 200:
                    return False
        return True


# --- clients ------------------------------------------------------------------------------


@dataclass
class FleetStats:
    requests: int = 0
    retries: int = 0
    failovers: int = 0
    """Retries sent to another API than the one that failed."""
    torn: int = 0
    """Requests whose connection broke after they were sent (the API died under them)."""
    refused: int = 0
    """Connections refused (nothing listening: the API was down)."""
    not_now: int = 0
    """502/503/504 answers (PostgreSQL or Temporal down), retried."""
    gave_up: int = 0
    answered_by: Counter[int] = field(default_factory=Counter)


class Fleet:
    """Clients for several API processes. A request that gets no answer, or a "not
    now" answer, is sent again, unchanged, to the next API, with backoff, until
    `give_up_after` seconds have passed."""

    def __init__(self, ports: list[int], key: str, *, give_up_after: float = 120.0) -> None:
        self.ports = ports
        self.give_up_after = give_up_after
        self.stats = FleetStats()
        self.in_flight: Counter[int] = Counter()
        """Requests sent and not yet answered, by API port."""
        headers = {"Authorization": f"Bearer {key}"}
        self._clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", headers=headers,
                                           timeout=20) for p in ports]

    async def close(self) -> None:
        for c in self._clients:
            await c.aclose()

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                   via: int = 0) -> httpx.Response | None:
        self.stats.requests += 1
        deadline = time.monotonic() + self.give_up_after
        target, delay = via % len(self._clients), 0.1
        while True:
            port = self.ports[target]
            self.in_flight[port] += 1
            try:
                r = await self._clients[target].request(method, path, json=body)
                if r.status_code not in RETRY_STATUSES:
                    self.stats.answered_by[port] += 1
                    return r
                self.stats.not_now += 1
            except httpx.ConnectError:
                self.stats.refused += 1
            except httpx.TransportError:
                self.stats.torn += 1
            finally:
                self.in_flight[port] -= 1
            if time.monotonic() + delay > deadline:
                self.stats.gave_up += 1
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            self.stats.retries += 1
            if len(self._clients) > 1:
                target = (target + 1) % len(self._clients)
                self.stats.failovers += 1


# --- the load -------------------------------------------------------------------------------


@dataclass
class LoadStats:
    orders_sent: int = 0
    orders_created: int = 0
    """Answered 201: a new order."""
    orders_replayed: int = 0
    """Answered 200 with Idempotent-Replayed: a retry of an order an API had already taken
    (its first answer was lost with the API, or PostgreSQL committed it as it went down)."""
    lines: int = 0
    units: int = 0
    receipts: int = 0
    receipt_units: int = 0
    counts: int = 0
    counts_refused: int = 0
    """Counts below what is already reserved, refused with 409 (the count raced a
    reservation): an answer, not a failure."""
    cancels: int = 0
    unexpected: list[str] = field(default_factory=list)
    accepted_numbers: set[str] = field(default_factory=set)
    sent_numbers: set[str] = field(default_factory=set)

    @property
    def orders_accepted(self) -> int:
        return len(self.accepted_numbers)

    def figures(self) -> dict[str, int]:
        return {"orders_sent": self.orders_sent, "orders_accepted": self.orders_accepted,
                "orders_replayed": self.orders_replayed, "lines": self.lines,
                "units": self.units, "receipts": self.receipts,
                "receipt_units": self.receipt_units, "counts": self.counts,
                "counts_refused": self.counts_refused, "cancels": self.cancels}


class MixedLoad:
    """Seeded: each client's sequence of operations follows from the seed (how they
    interleave, and which API answers, depends on timing)."""

    WEIGHTS = {"order": 55, "receipt": 20, "count": 10, "cancel": 15}

    def __init__(self, fleet: Fleet, seed: int, *, prefix: str = "MX") -> None:
        self.fleet = fleet
        self.seed = seed
        self.prefix = prefix
        self.stats = LoadStats()
        self.ops_done = 0
        self._orders: dict[int, list[dict[str, Any]]] = {}

    def _unexpected(self, what: str, r: httpx.Response | None) -> None:
        self.stats.unexpected.append(
            f"{what}: " + ("no answer" if r is None else f"{r.status_code} {r.text[:200]}"))

    async def setup(self) -> None:
        for sku, (policy, on_hand) in PRODUCTS.items():
            r = await self.fleet.send("PUT", f"/products/{sku}",
                                      {"allocation_policy": policy, "name": f"mixed {sku}"})
            if r is None or r.status_code not in (200, 201):
                raise RuntimeError(f"product {sku}: {r and r.text}")
            r = await self.fleet.send("PUT", f"/inventory/{sku}", {"on_hand": on_hand})
            if r is None or r.status_code != 200:
                raise RuntimeError(f"stock {sku}: {r and r.text}")

    async def run(self, *, clients: int = 4, ops: int | None = None,
                  until: Callable[[], bool] | None = None, pause: float = 0.05) -> None:
        """`clients` concurrent clients, each sending to the APIs in turn, for `ops`
        operations in all or until `until()` says stop."""
        budget = ops

        def more() -> bool:
            nonlocal budget
            if until is not None and until():
                return False
            if budget is None:
                return True
            if budget <= 0:
                return False
            budget -= 1
            return True

        await asyncio.gather(*(self._client(c, more, pause) for c in range(clients)))

    async def _client(self, c: int, more: Callable[[], bool], pause: float) -> None:
        rng = random.Random(f"{self.seed}-{c}")
        kinds, weights = zip(*self.WEIGHTS.items(), strict=True)
        n = 0
        while more():
            kind = rng.choices(kinds, weights)[0]
            via = c + n
            if kind == "order":
                await self._order(rng, c, n, via)
            elif kind == "receipt":
                await self._receipt(rng, c, n, via)
            elif kind == "count":
                await self._count(rng, via)
            else:
                await self._cancel(rng, c, via)
            n += 1
            self.ops_done += 1
            await asyncio.sleep(pause)

    async def _order(self, rng: random.Random, c: int, n: int, via: int) -> None:
        number = f"{self.prefix}-{self.seed}-{c}-{n}"
        skus = rng.sample(sorted(PRODUCTS), rng.randint(1, 3))
        lines = [{"sku": s, "quantity": rng.randint(1, 4), "unit_price": "10.00"} for s in skus]
        customer = f"cust-{rng.randint(1, 12)}"
        body = {"channel": rng.choice(("web", "phone")), "order_number": number,
                "customer": {"id": customer, "email": f"{customer}@example.com",
                             "tier": rng.choice(("standard", "silver", "gold"))},
                "lines": lines}
        self.stats.orders_sent += 1
        self.stats.sent_numbers.add(number)
        r = await self.fleet.send("POST", "/orders", body, via=via)
        if r is None or r.status_code not in (200, 201):
            return self._unexpected(f"order {number}", r)
        if r.status_code == 200:
            self.stats.orders_replayed += 1
        else:
            self.stats.orders_created += 1
        self.stats.accepted_numbers.add(number)
        self.stats.lines += len(lines)
        self.stats.units += sum(ln["quantity"] for ln in lines)
        order = r.json()
        self._orders.setdefault(c, []).append(order)

    async def _receipt(self, rng: random.Random, c: int, n: int, via: int) -> None:
        receipt = {"receipt_id": f"{self.prefix}-GRN-{self.seed}-{c}-{n}",
                   "sku": rng.choice(sorted(PRODUCTS)), "quantity": rng.randint(3, 12)}
        r = await self.fleet.send("POST", "/receipts", receipt, via=via)
        if r is None or r.status_code not in (200, 201):
            return self._unexpected(f"receipt {receipt['receipt_id']}", r)
        self.stats.receipts += 1
        self.stats.receipt_units += receipt["quantity"]

    async def _count(self, rng: random.Random, via: int) -> None:
        """A count a little off what the system thinks: mostly more, sometimes fewer
        (never below what is reserved, as far as the reading shows)."""
        sku = rng.choice(sorted(PRODUCTS))
        delta = rng.randint(-2, 6)
        r = await self.fleet.send("GET", f"/inventory/{sku}", via=via)
        if r is None or r.status_code != 200:
            return self._unexpected(f"read stock {sku}", r)
        seen = r.json()
        on_hand = max(seen["on_hand"] + delta, seen["reserved"])
        r = await self.fleet.send("PUT", f"/inventory/{sku}",
                                  {"on_hand": on_hand, "reference": f"count {uuid.uuid4().hex[:8]}"},
                                  via=via)
        if r is not None and r.status_code == 409:
            self.stats.counts_refused += 1
        elif r is None or r.status_code != 200:
            return self._unexpected(f"count {sku}", r)
        else:
            self.stats.counts += 1

    async def _cancel(self, rng: random.Random, c: int, via: int) -> None:
        """One of this client's orders, whole or one line of it; it may have shipped,
        or been cancelled already (cancelling is safe to repeat)."""
        mine = self._orders.get(c)
        if not mine:
            return
        order = rng.choice(mine)
        body: dict[str, Any] = {"reason": "customer changed their mind"}
        if len(order["lines"]) > 1 and rng.random() < 0.5:
            body["line_ids"] = [rng.choice(order["lines"])["id"]]
        r = await self.fleet.send("POST", f"/orders/{order['id']}/cancel", body, via=via)
        if r is None or r.status_code != 200:
            return self._unexpected(f"cancel {order['order_number']}", r)
        self.stats.cancels += 1

    async def top_up(self, engine: AsyncEngine) -> int:
        """Receipts for whatever still waits, so every line can complete. Returns units."""
        total = 0
        for attempt in range(5):
            async with engine.connect() as conn:
                waiting = (await conn.execute(sa.text(
                    "SELECT sku, backordered FROM stock WHERE backordered > 0 ORDER BY sku"))).all()
            if not waiting:
                return total
            for row in waiting:
                receipt = {"receipt_id": f"{self.prefix}-TOPUP-{self.seed}-{attempt}-{row.sku}",
                           "sku": row.sku, "quantity": int(row.backordered)}
                r = await self.fleet.send("POST", "/receipts", receipt)
                if r is None or r.status_code not in (200, 201):
                    self._unexpected(f"top-up {receipt['receipt_id']}", r)
                else:
                    total += receipt["quantity"]
            await asyncio.sleep(0.5)
        return total


# --- afterwards ------------------------------------------------------------------------------


async def unsettled(engine: AsyncEngine) -> dict[str, int]:
    """What is not finished yet: lines with units neither shipped nor cancelled,
    allocations on their way, outbox messages not yet handed to Temporal."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("""
            SELECT (SELECT count(*) FROM order_lines
                    WHERE shipped_quantity + cancelled_quantity <> quantity) AS open_lines,
                   (SELECT count(*) FROM allocations
                    WHERE status NOT IN ('dispatched', 'cancelled')) AS allocations,
                   (SELECT count(*) FROM outbox WHERE delivered_at IS NULL
                    AND dead_at IS NULL) AS outbox
            """))).one()
    return dict(row._mapping)


async def settle(engine: AsyncEngine, client: Client, within: float) -> float:
    """Until every line is done in the ledger and every line workflow has completed;
    returns the seconds it took. Raises AssertionError with what is left otherwise."""
    start = time.monotonic()
    deadline = start + within
    left: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            left = await unsettled(engine)
        except Exception as exc:  # the database restarting under us
            left = {"error": repr(exc)}  # type: ignore[dict-item]
        if left and not any(left.values()):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"not settled after {within:.0f}s: {left}")
    running = await open_workflows(engine, client, deadline - time.monotonic())
    if running:
        raise AssertionError(f"{len(running)} line workflows not completed, e.g. {running[:5]}")
    return time.monotonic() - start


async def line_workflows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text(
            "SELECT workflow_id FROM order_lines WHERE workflow_id IS NOT NULL "
            "ORDER BY workflow_id"))).scalars())


async def open_workflows(engine: AsyncEngine, client: Client, within: float) -> list[str]:
    """Line workflows not COMPLETED `within` seconds (after the ledger says shipped, a
    line still has its last message to send before it closes)."""
    gate = asyncio.Semaphore(16)
    deadline = time.monotonic() + max(within, 30)

    async def status(workflow_id: str) -> str | None:
        async with gate:
            handle = client.get_workflow_handle(workflow_id)
            while True:
                found = (await handle.describe()).status
                if found == WorkflowExecutionStatus.COMPLETED:
                    return None
                if found != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
                    return f"{workflow_id}: {found.name if found else found}"
                await asyncio.sleep(0.5)

    found = await asyncio.gather(*(status(w) for w in await line_workflows(engine)))
    return [f for f in found if f is not None]


async def verify(engine: AsyncEngine, stats: LoadStats) -> list[str]:
    """The invariants, as a list of violations (empty: all hold): the ledger balances
    (`tests.support.check_invariants`: nothing oversold, nothing handed over twice,
    stock and lines add up), every parcel handed over once per dispatched allocation,
    nothing parked dead, every order a client was told was taken is there exactly once
    and nothing else is."""
    violations: list[str] = []
    try:
        await check_invariants(engine)
    except AssertionError as exc:
        violations.append(str(exc))
    handovers = await scalar(engine, "SELECT coalesce(sum(handovers), 0) FROM sim_warehouse_tasks")
    dispatched = await scalar(engine, "SELECT count(*) FROM allocations WHERE status = 'dispatched'")
    if handovers != dispatched:
        violations.append(f"{handovers} hand-overs for {dispatched} dispatched allocations")
    oversold = await scalar(engine, "SELECT count(*) FROM stock WHERE on_hand < 0 OR reserved > on_hand")
    if oversold:
        violations.append(f"{oversold} SKUs oversold")
    for table in ("outbox", "intakes"):
        column = "dead_at IS NOT NULL" if table == "outbox" else "state = 'dead'"
        dead = await scalar(engine, f"SELECT count(*) FROM {table} WHERE {column}")
        if dead:
            violations.append(f"{dead} {table} rows dead")
    async with engine.connect() as conn:
        numbers = list((await conn.execute(sa.text(
            "SELECT order_number FROM orders"))).scalars())
    twice = [n for n, k in Counter(numbers).items() if k > 1]
    if twice:
        violations.append(f"orders taken twice: {twice[:5]}")
    missing = stats.accepted_numbers - set(numbers)
    if missing:
        violations.append(f"{len(missing)} orders answered as taken but absent: {sorted(missing)[:5]}")
    strays = set(numbers) - stats.sent_numbers
    if strays:
        violations.append(f"{len(strays)} orders nobody sent: {sorted(strays)[:5]}")
    once = await scalar(engine, """
        SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM intakes i
            WHERE i.order_id = o.id AND i.state = 'accepted' AND i.reason IS NULL) <> 1""")
    if once:
        violations.append(f"{once} orders without exactly one accepted intake")
    unfinished = await scalar(engine, """
        SELECT count(*) FROM order_lines
        WHERE shipped_quantity + cancelled_quantity <> quantity OR waiting_quantity <> 0""")
    if unfinished:
        violations.append(f"{unfinished} lines neither shipped nor cancelled in full")
    return violations


@dataclass
class WorkerWork:
    activities: Counter[str] = field(default_factory=Counter)
    """Activity tasks completed, by the identity of the worker that completed them."""
    workflow_tasks: Counter[str] = field(default_factory=Counter)
    """Workflow tasks completed, by identity."""
    workflows: int = 0


async def work_by_worker(engine: AsyncEngine, client: Client) -> WorkerWork:
    """Who did the work, read from every line workflow's history: the identity on each
    completed activity task and workflow task (`pid@host` of the worker process)."""
    work = WorkerWork()
    gate = asyncio.Semaphore(16)

    async def read(workflow_id: str) -> None:
        async with gate:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                work.activities[event.activity_task_completed_event_attributes.identity] += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                work.workflow_tasks[event.workflow_task_completed_event_attributes.identity] += 1

    ids = await line_workflows(engine)
    work.workflows = len(ids)
    await asyncio.gather(*(read(w) for w in ids))
    return work


async def scrape_activity_count(port: int) -> float | None:
    """Activity executions a live worker's own metrics count (None: no answer)."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("temporal_activity_execution_latency_count"))
