"""Bad input gets a 4xx that names the field and changes nothing; never a 500."""

from __future__ import annotations

import uuid

import pytest

from tests.support import make_product, order_body, scalar


def _line(**overrides):
    line = {"sku": "E-1", "quantity": 1, "unit_price": "1.00"}
    line.update(overrides)
    return line


def _order(**overrides):
    body = order_body("E-ORDER", [("E-1", 1)])
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_order(lines=[_line(quantity=0)]), "lines[0].quantity"),
        (_order(lines=[_line(quantity=-3)]), "lines[0].quantity"),
        (_order(lines=[_line(quantity="two")]), "lines[0].quantity"),
        (_order(lines=[_line(quantity=1.5)]), "lines[0].quantity"),
        (_order(lines=[_line(unit_price="-1")]), "lines[0].unit_price"),
        (_order(lines=[_line(unit_price="1.123456")]), "lines[0].unit_price"),
        (_order(lines=[_line(sku="")]), "lines[0].sku"),
        (_order(lines=[_line(sku="has space")]), "lines[0].sku"),
        (_order(lines=[_line(), _line(quantiy=2)]), "lines[1].quantiy"),
        (_order(lines=[]), "lines"),
        (_order(customer={"id": "c", "tier": "diamond"}), "customer.tier"),
        (_order(customer={"id": "c", "email": "not-an-email"}), "customer.email"),
        (_order(customer={"id": "c", "phone": "call me"}), "customer.phone"),
        (_order(customer={"email": "a@example.com"}), "customer.id"),
        (_order(channel="Web Shop!"), "channel"),
        (_order(order_number=""), "order_number"),
        (_order(placed_at="2026-11-01T09:00:00"), "placed_at"),
        (_order(placed_at="2999-01-01T00:00:00Z"), "placed_at"),
        (_order(placed_at="yesterday"), "placed_at"),
        ({k: v for k, v in _order().items() if k != "customer"}, "customer"),
    ],
)
async def test_malformed_orders_are_refused_naming_the_field(api, db, body, field):
    await make_product(api, "E-1", on_hand=5)
    r = await api.post("/orders", json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["error"] == "validation_error"
    assert field in [f["field"] for f in payload["fields"]], payload
    assert field in payload["message"]
    assert await scalar(db, "SELECT count(*) FROM orders") == 0


async def test_unknown_sku_is_refused_naming_the_line(api, db):
    await make_product(api, "E-1", on_hand=5)
    r = await api.post("/orders", json=order_body("U-1", [("E-1", 1), ("NOPE", 1)]))
    assert r.status_code == 422
    assert r.json() | {"message": None} == {"error": "unknown_sku", "field": "lines[1].sku",
                                            "message": None}
    assert "NOPE" in r.json()["message"]
    assert await scalar(db, "SELECT count(*) FROM orders") == 0
    assert await scalar(db, "SELECT reserved FROM stock WHERE sku = 'E-1'") == 0


async def test_body_that_is_not_json_is_a_422_not_a_500(api, db):
    r = await api.post("/orders", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in r.json()["message"]
    r = await api.post("/orders", json=[1, 2, 3])
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "E-1", "quantity": 0, "receipt_id": "r"}, "quantity"),
        ({"sku": "E-1", "quantity": 2}, "receipt_id"),
        ({"sku": "E 1", "quantity": 2, "receipt_id": "r"}, "sku"),
        ({"sku": "NOPE", "quantity": 2, "receipt_id": "r"}, "sku"),
    ],
)
async def test_bad_receipts_are_refused_naming_the_field(api, db, body, field):
    await make_product(api, "E-1")
    r = await api.post("/receipts", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert await scalar(db, "SELECT count(*) FROM receipts") == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/products/E-1", {"allocation_policy": "lifo"}, 422, "allocation_policy"),
        ("/products/E-1", {"backorder": {"max_quantity": -1}}, 422, "backorder.max_quantity"),
        ("/products/E-1", {"backorder": {"allowed": "sometimes"}}, 422, "backorder.allowed"),
        ("/products/bad%20sku", {}, 422, "sku"),
        ("/inventory/E-1", {"on_hand": -1}, 422, "on_hand"),
        ("/inventory/E-1", {}, 422, "on_hand"),
        ("/inventory/UNKNOWN", {"on_hand": 1}, 404, "sku"),
    ],
)
async def test_bad_catalog_requests_are_refused_naming_the_field(api, db, path, body, status, field):
    r = await api.put(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


async def test_a_count_below_what_customers_hold_is_refused(api, db):
    await make_product(api, "E-2", on_hand=5)
    await api.post("/orders", json=order_body("H-1", [("E-2", 4)]))
    r = await api.put("/inventory/E-2", json={"on_hand": 3})
    assert r.status_code == 409
    assert r.json()["error"] == "count_below_reserved" and r.json()["field"] == "on_hand"
    assert await scalar(db, "SELECT on_hand FROM stock WHERE sku = 'E-2'") == 5


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("get", f"/orders/{uuid.UUID(int=1)}", 404, "order_id"),
        ("get", "/orders/not-a-uuid", 422, "order_id"),
        ("post", f"/orders/{uuid.UUID(int=1)}/cancel", 404, "order_id"),
        ("get", f"/backorders/{uuid.UUID(int=1)}", 404, "line_id"),
        ("get", "/backorders?status=lost", 422, "status"),
        ("get", "/backorders?limit=0", 422, "limit"),
        ("get", "/receipts/none", 404, "receipt_id"),
        ("get", "/products/NONE", 404, "sku"),
        ("get", "/inventory/NONE", 404, "sku"),
        ("get", "/orders?channel=web", 422, "order_number"),
    ],
)
async def test_unknown_things_and_bad_parameters_get_clear_answers(api, db, method, path,
                                                                    status, field):
    r = await getattr(api, method)(path)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


async def test_cancelling_a_line_of_another_order_is_refused(api, db):
    await make_product(api, "E-3")
    r = await api.post("/orders", json=order_body("L-1", [("E-3", 1)]))
    order_id = r.json()["id"]
    r = await api.post(f"/orders/{order_id}/cancel", json={"line_ids": [str(uuid.uuid4())]})
    assert r.status_code == 422 and r.json()["field"] == "line_ids[0]"
    assert await scalar(db, "SELECT cancelled_quantity FROM order_lines") == 0


async def test_unknown_route_is_a_json_404(api, db):
    r = await api.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
