"""Who gets restocked units first: FIFO by order time, or priority by tier, order value
and order time; partial receipts fill the front of the queue and no further."""

from __future__ import annotations

from tests.support import make_product, place, receive


def _t(minute: int) -> str:
    return f"2026-11-01T09:{minute:02d}:00+00:00"


async def _queue(api, sku: str) -> list[tuple[str, int, int]]:
    page = (await api.get("/backorders", params={"sku": sku})).json()
    return [(i["order_number"], i["queue_position"], i["backordered_quantity"])
            for i in page["items"]]


async def test_fifo_serves_oldest_orders_first_and_fills_partially(api, db):
    await make_product(api, "FIFO-1")
    # Placed out of submission order on purpose: placed_at decides, not arrival.
    await place(api, "O-3", [("FIFO-1", 2)], placed_at=_t(30))
    await place(api, "O-1", [("FIFO-1", 3)], placed_at=_t(10))
    await place(api, "O-2", [("FIFO-1", 1)], placed_at=_t(20))
    assert await _queue(api, "FIFO-1") == [("O-1", 1, 3), ("O-2", 2, 1), ("O-3", 3, 2)]

    first = await receive(api, "R-1", "FIFO-1", 2)
    assert [a["quantity"] for a in first["allocations"]] == [2]
    assert first["allocated_quantity"] == 2 and first["to_stock_quantity"] == 0
    assert await _queue(api, "FIFO-1") == [("O-1", 1, 1), ("O-2", 2, 1), ("O-3", 3, 2)]

    second = await receive(api, "R-2", "FIFO-1", 3)
    assert [a["quantity"] for a in second["allocations"]] == [1, 1, 1]
    assert await _queue(api, "FIFO-1") == [("O-3", 1, 1)]

    third = await receive(api, "R-3", "FIFO-1", 5)
    assert [a["quantity"] for a in third["allocations"]] == [1]
    assert third["to_stock_quantity"] == 4
    assert await _queue(api, "FIFO-1") == []
    inventory = (await api.get("/inventory/FIFO-1")).json()
    assert inventory["available"] == 4 and inventory["backordered"] == 0


async def test_equal_order_times_are_served_in_arrival_order(api, db):
    await make_product(api, "FIFO-TIE")
    for n in range(4):
        await place(api, f"T-{n}", [("FIFO-TIE", 1)], placed_at=_t(0))
    receipt = await receive(api, "R-T", "FIFO-TIE", 2)
    orders = [(await api.get(f"/orders/{a['order_id']}")).json()["order_number"]
              for a in receipt["allocations"]]
    assert orders == ["T-0", "T-1"]


async def test_priority_serves_tier_then_order_value_then_order_time(api, db):
    await make_product(api, "PRIO-1", allocation_policy="priority")
    await place(api, "std-early", [("PRIO-1", 1, "10.00")], tier="standard", placed_at=_t(1))
    await place(api, "gold-small", [("PRIO-1", 1, "10.00")], tier="gold", placed_at=_t(5))
    await place(api, "gold-big", [("PRIO-1", 1, "900.00")], tier="gold", placed_at=_t(6))
    await place(api, "silver", [("PRIO-1", 1, "10.00")], tier="silver", placed_at=_t(2))
    await place(api, "plat-late", [("PRIO-1", 1, "1.00")], tier="platinum", placed_at=_t(9))
    await place(api, "gold-small-later", [("PRIO-1", 1, "10.00")], tier="gold", placed_at=_t(7))

    expected = ["plat-late", "gold-big", "gold-small", "gold-small-later", "silver", "std-early"]
    assert [o for o, _, _ in await _queue(api, "PRIO-1")] == expected

    receipt = await receive(api, "R-P", "PRIO-1", 3)
    served = [(await api.get(f"/orders/{a['order_id']}")).json()["order_number"]
              for a in receipt["allocations"]]
    assert served == expected[:3]


async def test_order_value_counts_the_whole_order_not_just_the_line(api, db):
    await make_product(api, "PRIO-2", allocation_policy="priority")
    await make_product(api, "OTHER", on_hand=100)
    await place(api, "line-only", [("PRIO-2", 1, "50.00")], tier="gold")
    await place(api, "big-basket", [("PRIO-2", 1, "5.00"), ("OTHER", 10, "20.00")], tier="gold")
    assert [o for o, _, _ in await _queue(api, "PRIO-2")] == ["big-basket", "line-only"]


async def test_switching_a_sku_to_priority_reorders_its_waiting_queue(api, db):
    await make_product(api, "SWITCH")
    await place(api, "old-std", [("SWITCH", 1)], tier="standard", placed_at=_t(1))
    await place(api, "new-plat", [("SWITCH", 1)], tier="platinum", placed_at=_t(2))
    assert [o for o, _, _ in await _queue(api, "SWITCH")] == ["old-std", "new-plat"]
    await make_product(api, "SWITCH", allocation_policy="priority")
    assert [o for o, _, _ in await _queue(api, "SWITCH")] == ["new-plat", "old-std"]
    receipt = await receive(api, "R-S", "SWITCH", 1)
    order = (await api.get(f"/orders/{receipt['allocations'][0]['order_id']}")).json()
    assert order["order_number"] == "new-plat"


async def test_queue_reports_units_ahead_and_age(api, db):
    await make_product(api, "AHEAD")
    await place(api, "a", [("AHEAD", 4)], placed_at=_t(1))
    await place(api, "b", [("AHEAD", 2)], placed_at=_t(2))
    await place(api, "c", [("AHEAD", 1)], placed_at=_t(3))
    items = (await api.get("/backorders", params={"sku": "AHEAD"})).json()["items"]
    assert [i["units_ahead"] for i in items] == [0, 4, 6]
    assert all(i["age_seconds"] >= 0 for i in items)
    assert all(i["workflow_id"].startswith("line-") for i in items)


async def test_a_stock_count_increase_serves_the_queue_like_a_receipt(api, db):
    await make_product(api, "COUNT")
    await place(api, "first", [("COUNT", 2)], placed_at=_t(1))
    await place(api, "second", [("COUNT", 2)], placed_at=_t(2))
    r = await api.put("/inventory/COUNT", json={"on_hand": 3, "reference": "cycle count 7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["quantity"] for a in body["allocated"]] == [2, 1]
    assert (body["on_hand"], body["reserved"], body["available"], body["backordered"]) == (3, 3, 0, 1)
