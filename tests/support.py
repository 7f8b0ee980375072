"""Helpers the tests share: a running worker, waiting for conditions, invariant checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from backorders.domain.access import Caller, Role
from backorders.notify.service import Notifier, relay_staff_alerts
from backorders.schemas import KeyIn
from backorders.services import keys
from backorders.settings import Settings
from handoff.deliver import OutboxDeliverer
from handoff.relay import OutboxRelay
from worker import build_worker, simulated_warehouse

T = TypeVar("T")

TESTS = Caller(name="tests")


async def new_key(engine: AsyncEngine, settings: Settings, role: Role = Role.ADMIN,
                  channel: str | None = None, name: str | None = None) -> str:
    """A fresh API key, as `keys create` would print it."""
    made = await keys.create(engine, settings, KeyIn(name=name or f"{role.value} (tests)", role=role,
                                                     channel=channel), by=TESTS)
    return made.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api_client(app: Any, engine: AsyncEngine, settings: Settings, *,
                     base_url: str = "http://backorders",
                     role: Role = Role.ADMIN) -> AsyncIterator[Any]:
    """The app's lifespan and an httpx client on it that sends a key of `role`."""
    import httpx

    key = await new_key(engine, settings, role)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url,
                                     headers=bearer(key)) as client:
            yield client
    await no_unaudited_writes(engine)


async def no_unaudited_writes(engine: AsyncEngine) -> None:
    """Every write a test made through the API was audited in its own transaction: the
    gate flags any it had to record afterwards."""
    from api.access import UNAUDITED

    late = await rows(engine, "SELECT method, path FROM audit_log WHERE detail = :d",
                      d=UNAUDITED)
    assert not late, f"writes not audited in their transaction: {late}"


@dataclass
class RunningWorker:
    worker: Worker
    client: Client
    settings: Settings


@asynccontextmanager
async def start_worker(
    client: Client, engine: AsyncEngine, settings: Settings, *, relay: bool = True
) -> AsyncIterator[RunningWorker]:
    notifier = Notifier(engine, settings)
    worker = build_worker(client, engine, settings, simulated_warehouse(engine, settings),
                          notifier)
    stop = asyncio.Event()
    async with worker:
        tasks = []
        if relay:
            tasks = [
                asyncio.create_task(
                    OutboxRelay(OutboxDeliverer(engine, client, settings), settings).run(stop)),
                asyncio.create_task(
                    relay_staff_alerts(notifier, stop, settings.outbox_poll_seconds)),
            ]
        try:
            yield RunningWorker(worker, client, settings)
        finally:
            stop.set()
            for task in tasks:
                await task


class HandedOff:
    """A write's `hand_off` that keeps the outbox rows instead of delivering them, for
    tests that deliver by hand (or not at all)."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def __call__(self, outbox_ids: list[int]) -> None:
        self.ids += outbox_ids


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool] = bool,
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> T:
    """Poll `probe` until `until(result)` holds; fail with the last result otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.05)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[sa.Row]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text(sql), params)).all())


async def all_settled(engine: AsyncEngine) -> bool:
    """No allocation still on its way, and every outbox message delivered."""
    busy = await scalar(
        engine,
        """
        SELECT (SELECT count(*) FROM allocations WHERE status NOT IN ('dispatched', 'cancelled'))
             + (SELECT count(*) FROM outbox WHERE delivered_at IS NULL)
        """,
    )
    return busy == 0


async def wait_settled(engine: AsyncEngine, timeout: float = 60.0) -> None:
    await eventually(lambda: all_settled(engine), timeout=timeout, what="all work to settle")


async def check_invariants(engine: AsyncEngine) -> None:
    """The ledger adds up: what every test under concurrency must leave behind."""
    async with engine.connect() as conn:
        bad_stock = (await conn.execute(sa.text(
            """
            SELECT s.sku, s.on_hand, s.reserved, s.backordered,
                   coalesce(r.reserved, 0) AS ledger_reserved,
                   coalesce(w.waiting, 0) AS ledger_waiting,
                   coalesce(m.moved, 0) AS ledger_on_hand
            FROM stock s
            LEFT JOIN (SELECT sku, sum(quantity) AS reserved FROM allocations
                       WHERE status NOT IN ('dispatched', 'cancelled') GROUP BY sku) r
                   ON r.sku = s.sku
            LEFT JOIN (SELECT sku, sum(waiting_quantity) AS waiting FROM order_lines
                       GROUP BY sku) w ON w.sku = s.sku
            LEFT JOIN (SELECT sku, sum(delta) AS moved FROM inventory_movements
                       GROUP BY sku) m ON m.sku = s.sku
            WHERE s.on_hand < 0 OR s.reserved < 0 OR s.reserved > s.on_hand
               OR s.reserved <> coalesce(r.reserved, 0)
               OR s.backordered <> coalesce(w.waiting, 0)
               OR s.on_hand <> coalesce(m.moved, 0)
            """
        ))).all()
        assert not bad_stock, f"stock does not match the ledger: {bad_stock}"
        bad_lines = (await conn.execute(sa.text(
            """
            SELECT l.id, l.quantity, l.waiting_quantity, l.shipped_quantity,
                   l.cancelled_quantity, a.shipped, a.in_flight, a.cancelled
            FROM order_lines l
            CROSS JOIN LATERAL (
                SELECT coalesce(sum(quantity) FILTER (WHERE status = 'dispatched'), 0) AS shipped,
                       coalesce(sum(quantity) FILTER (
                           WHERE status NOT IN ('dispatched', 'cancelled')), 0) AS in_flight,
                       coalesce(sum(quantity) FILTER (WHERE status = 'cancelled'), 0) AS cancelled
                FROM allocations WHERE line_id = l.id) a
            WHERE l.waiting_quantity + a.shipped + a.in_flight + l.cancelled_quantity <> l.quantity
               OR l.shipped_quantity <> a.shipped
               OR l.cancelled_quantity < a.cancelled
            """
        ))).all()
        assert not bad_lines, f"lines do not add up: {bad_lines}"
        strays = (await conn.execute(sa.text(
            """
            SELECT a.id, a.order_id, a.sku, l.order_id AS line_order, l.sku AS line_sku
            FROM allocations a JOIN order_lines l ON l.id = a.line_id
            WHERE a.order_id <> l.order_id OR a.sku <> l.sku
            """
        ))).all()
        assert not strays, f"allocations that disagree with their line's order or SKU: {strays}"
        double = (await conn.execute(sa.text(
            "SELECT allocation_id, handovers FROM sim_warehouse_tasks WHERE handovers > 1"
        ))).all()
        assert not double, f"parcels handed over more than once: {double}"
        shipped_cancelled = (await conn.execute(sa.text(
            """
            SELECT a.id FROM allocations a JOIN sim_warehouse_tasks t ON t.allocation_id = a.id
            WHERE a.status = 'cancelled' AND t.handed_over_at IS NOT NULL
            """
        ))).all()
        assert not shipped_cancelled, f"cancelled allocations that shipped: {shipped_cancelled}"
        receipts = (await conn.execute(sa.text(
            """
            SELECT r.receipt_id FROM receipts r
            LEFT JOIN (SELECT receipt_id, sum(quantity) AS q FROM allocations
                       WHERE source = 'receipt' GROUP BY receipt_id) a
                   ON a.receipt_id = r.receipt_id
            WHERE coalesce(a.q, 0) <> r.allocated_quantity OR r.allocated_quantity > r.quantity
            """
        ))).all()
        assert not receipts, f"receipts whose allocations do not add up: {receipts}"


# --- API helpers ----------------------------------------------------------------------


async def make_product(api: Any, sku: str, *, on_hand: int = 0, **product: Any) -> None:
    r = await api.put(f"/products/{sku}", json=product)
    assert r.status_code in (200, 201), r.text
    if on_hand:
        r = await api.put(f"/inventory/{sku}", json={"on_hand": on_hand})
        assert r.status_code == 200, r.text


def order_body(
    number: str,
    lines: list[tuple[str, int]] | list[tuple[str, int, str]],
    *,
    customer: str = "cust-1",
    tier: str = "standard",
    placed_at: str | None = None,
    channel: str = "web",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": channel,
        "order_number": number,
        "customer": {"id": customer, "email": f"{customer}@example.com", "tier": tier},
        "lines": [
            {"sku": ln[0], "quantity": ln[1], "unit_price": ln[2] if len(ln) > 2 else "10.00"}
            for ln in lines
        ],
    }
    if placed_at:
        body["placed_at"] = placed_at
    return body


async def place(api: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    r = await api.post("/orders", json=order_body(*args, **kwargs))
    assert r.status_code == 201, r.text
    return r.json()


async def receive(api: Any, receipt_id: str, sku: str, quantity: int,
                  purchase_order: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"receipt_id": receipt_id, "sku": sku, "quantity": quantity}
    if purchase_order is not None:
        body["purchase_order"] = purchase_order
    r = await api.post("/receipts", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def line_of(api: Any, order: dict[str, Any], index: int = 0) -> dict[str, Any]:
    r = await api.get(f"/orders/{order['id']}")
    assert r.status_code == 200, r.text
    return r.json()["lines"][index]
