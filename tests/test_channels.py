"""Channel intake: each platform's own payload (fixtures shaped as the platforms document
them), signatures, redelivery, validation by channel and account, and payloads parked
dead until ops fix the cause and replay them."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from backorders.domain.access import Role
from backorders.services import intake as intake_service
from tests.support import make_product, rows, scalar

SECRET = "shpss_0123456789abcdef0123"

SHOPIFY_ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "order_number": 1001,
    "name": "#1001",
    "email": "jon@example.com",
    "phone": None,
    "created_at": "2026-11-30T10:15:00-05:00",
    "currency": "USD",
    "financial_status": "paid",
    "total_price": "64.00",
    "customer": {
        "id": 115310627314723954,
        "email": "jon@example.com",
        "first_name": "Jon",
        "last_name": "Snow",
        "phone": "+16135550182",
        "tags": "wholesale, tier:gold",
    },
    "line_items": [
        {"id": 866550311766439020, "variant_id": 808950810, "product_id": 632910392,
         "title": "Brake pad set", "sku": "SHOP-PAD", "quantity": 3, "price": "12.00",
         "fulfillable_quantity": 3, "requires_shipping": True},
        {"id": 141249953214522974, "variant_id": 457924702, "product_id": 632910393,
         "title": "Rotor", "sku": "SHOP-ROTOR", "quantity": 1, "price": "28.00",
         "fulfillable_quantity": 1, "requires_shipping": True},
    ],
    "shipping_address": {"first_name": "Jon", "address1": "1 Wall St", "city": "Ottawa",
                         "country_code": "CA", "phone": "+16135550182"},
}

WOO_ORDER: dict[str, Any] = {
    "id": 727,
    "parent_id": 0,
    "number": "727",
    "status": "processing",
    "currency": "USD",
    "date_created": "2026-11-30T10:15:00",
    "date_created_gmt": "2026-11-30T15:15:00",
    "total": "36.00",
    "customer_id": 0,
    "billing": {"first_name": "Ana", "last_name": "Lima", "email": "ana@example.com",
                "phone": "(613) 555-0182", "country": "US"},
    "shipping": {"first_name": "Ana", "last_name": "Lima", "country": "US"},
    "line_items": [
        {"id": 315, "name": "Chain", "product_id": 93, "variation_id": 0, "quantity": 2,
         "tax_class": "", "subtotal": "36.00", "total": "36.00", "sku": "WOO-CHAIN",
         "price": 18}],
}

AMAZON_ORDER: dict[str, Any] = {
    "AmazonOrderId": "902-3159896-1390916",
    "PurchaseDate": "2026-11-30T15:15:00Z",
    "LastUpdateDate": "2026-11-30T15:20:00Z",
    "OrderStatus": "Unshipped",
    "FulfillmentChannel": "MFN",
    "SalesChannel": "Amazon.com",
    "OrderTotal": {"CurrencyCode": "USD", "Amount": "75.00"},
    "MarketplaceId": "ATVPDKIKX0DER",
    "BuyerInfo": {"BuyerEmail": "5vlhfg2xqx0wgrv@marketplace.amazon.com"},
    "OrderItems": [
        {"ASIN": "B00551Q3CS", "SellerSKU": "AMZ-BELT", "OrderItemId": "05015851154158",
         "Title": "Drive belt", "QuantityOrdered": 3, "QuantityShipped": 0,
         "ItemPrice": {"CurrencyCode": "USD", "Amount": "75.00"}}],
}


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def channel(api, name: str, kind: str, **extra: Any) -> dict[str, Any]:
    r = await api.put(f"/channels/{name}", json={"kind": kind, "secret": SECRET, **extra})
    assert r.status_code in (200, 201), r.text
    return r.json()


async def webhook(api, name: str, payload: Any, headers: dict[str, str]) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await api.post(f"/channels/{name}/orders", content=body,
                          headers={"content-type": "application/json", **headers},
                          )


def shopify_headers(body: bytes, delivery: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                    secret: str = SECRET) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": sign(body, secret), "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "parts.myshopify.com"}


async def post_shopify(api, payload: dict[str, Any], name: str = "shop",
                       **kwargs: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await webhook(api, name, body, shopify_headers(body, **kwargs))


@pytest.fixture
async def shop(api) -> Any:
    await make_product(api, "SHOP-PAD", on_hand=1)
    await make_product(api, "SHOP-ROTOR", on_hand=5)
    await channel(api, "shop", "shopify")
    return api


async def test_a_shopify_orders_create_webhook_becomes_the_order_it_describes(shop, db):
    r = await post_shopify(shop, SHOPIFY_ORDER)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["state"] == "accepted" and answer["order_number"] == "1001"
    order = (await shop.get(f"/orders/{answer['order_id']}")).json()
    assert (order["channel"], order["order_number"]) == ("shop", "1001")
    assert order["customer"] == {"id": "115310627314723954", "email": "jon@example.com",
                                 "phone": "+16135550182", "tier": "gold"}
    assert order["placed_at"].startswith("2026-11-30T15:15:00")
    assert [(ln["sku"], ln["quantity"], ln["unit_price"], ln["backordered_quantity"])
            for ln in order["lines"]] == [("SHOP-PAD", 3, "12.0000", 2),
                                          ("SHOP-ROTOR", 1, "28.0000", 0)]
    [stored] = await rows(db, "SELECT * FROM intakes")
    assert (stored.state, stored.signature, str(stored.order_id)) == (
        "accepted", "valid", answer["order_id"])
    assert json.loads(stored.body) == SHOPIFY_ORDER  # as received, byte for byte
    [audited] = await rows(db, "SELECT actor, resource FROM audit_log "
                               "WHERE path = '/channels/shop/orders'")
    assert (audited.actor, audited.resource) == ("shop webhook", answer["order_id"])


async def test_the_same_webhook_delivered_twice_creates_one_order(shop, db):
    first = await post_shopify(shop, SHOPIFY_ORDER)
    again = await post_shopify(shop, SHOPIFY_ORDER)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["order_id"] == first.json()["order_id"]
    # Another delivery id for the same order (a platform's manual resend): still one order.
    other = await post_shopify(shop, SHOPIFY_ORDER, delivery="another-delivery")
    assert other.status_code == 200 and other.json()["order_id"] == first.json()["order_id"]
    assert await scalar(db, "SELECT count(*) FROM orders") == 1
    assert [(r.deliveries, r.reason) for r in await rows(
        db, "SELECT deliveries, reason FROM intakes ORDER BY id")] == [
        (2, None), (1, "duplicate_order")]


@pytest.mark.parametrize("signature", [None, "wrong", "other secret"])
async def test_a_bad_signature_is_401_counted_in_health_and_keeps_nothing(shop, db, signature):
    body = json.dumps(SHOPIFY_ORDER).encode()
    headers = shopify_headers(body)
    if signature is None:
        del headers["X-Shopify-Hmac-Sha256"]
    elif signature == "wrong":
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(b"x" * 32).decode()
    else:
        headers = shopify_headers(body, secret="another-secret-0123456789")
    r = await webhook(shop, "shop", body, headers)
    assert r.status_code == 401 and r.json()["error"] == "bad_signature"
    assert await scalar(db, "SELECT count(*) FROM orders") == 0
    [stored] = await rows(db, "SELECT state, reason, body, signature FROM intakes")
    assert (stored.state, stored.reason, stored.body) == ("rejected", "bad_signature", None)
    assert stored.signature == ("missing" if signature is None else "invalid")
    [health] = [c["health"] for c in (await shop.get("/channels")).json() if c["name"] == "shop"]
    assert health["rejected"] == 1 and health["error_rate_last_hour"] == 1.0


async def test_a_channel_secret_is_write_only(shop, db):
    listed = (await shop.get("/channels")).json()
    assert listed[0]["has_secret"] is True and SECRET not in json.dumps(listed)
    stored = await scalar(db, "SELECT secret FROM channels WHERE name = 'shop'")
    assert SECRET.encode() not in bytes(stored)
    r = await shop.put("/channels/shop", json={"kind": "shopify"})  # the secret is kept
    assert r.status_code == 200
    assert (await post_shopify(shop, SHOPIFY_ORDER)).status_code == 201
    r = await shop.put("/channels/new-shop", json={"kind": "shopify"})
    assert r.status_code == 422 and r.json()["field"] == "secret"


async def test_woocommerce_ping_is_answered_and_a_guest_order_is_taken_in(api, db):
    await make_product(api, "WOO-CHAIN")
    await channel(api, "woo", "woocommerce")
    ping = await api.post("/channels/woo/orders", content=b"webhook_id=15",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 201 and ping.json()["state"] == "accepted"
    body = json.dumps(WOO_ORDER).encode()
    r = await webhook(api, "woo", body, {"X-WC-Webhook-Signature": sign(body),
                                         "X-WC-Webhook-Delivery-ID": "4a5b",
                                         "X-WC-Webhook-Topic": "order.created"})
    assert r.status_code == 201, r.text
    order = (await api.get(f"/orders/{r.json()['order_id']}")).json()
    assert order["customer"]["id"] == "ana@example.com"
    assert order["customer"]["phone"] == "+16135550182"
    assert order["placed_at"].startswith("2026-11-30T15:15:00")
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [
        ("WOO-CHAIN", 2, "18.0000")]


async def test_a_marketplace_order_takes_its_unit_price_from_the_items_total(api):
    await make_product(api, "AMZ-BELT")
    await channel(api, "amazon", "marketplace")
    body = json.dumps(AMAZON_ORDER).encode()
    r = await webhook(api, "amazon", body, {"X-Backorders-Signature": sign(body),
                                            "X-Backorders-Delivery-Id": "902-3159896-1390916"})
    assert r.status_code == 201, r.text
    order = (await api.get(f"/orders/{r.json()['order_id']}")).json()
    assert order["order_number"] == "902-3159896-1390916"
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [
        ("AMZ-BELT", 3, "25.0000")]


async def test_a_payload_missing_a_field_is_rejected_naming_the_platforms_field(shop, db):
    broken = copy.deepcopy(SHOPIFY_ORDER)
    del broken["line_items"][1]["sku"]
    r = await post_shopify(shop, broken)
    assert r.status_code == 422, r.text
    assert (r.json()["error"], r.json()["field"]) == ("unreadable_order", "line_items[1].sku")
    assert r.json()["state"] == "rejected" and r.json()["intake_id"]
    r = await webhook(shop, "shop", b"not json", shopify_headers(b"not json", delivery="x2"))
    assert r.status_code == 422 and r.json()["error"] == "malformed_payload"
    assert await scalar(db, "SELECT count(*) FROM orders") == 0


async def test_channel_rules_refuse_naming_the_rule_and_accounts_override_them(api, db):
    await make_product(api, "SHOP-PAD", on_hand=10)
    r = await api.put("/products/SHOP-ROTOR", json={"list_price": "30.00"})
    assert r.status_code in (200, 201), r.text
    await channel(api, "shop", "shopify", validation={
        "require_phone": True, "max_lines": 1, "price_tolerance": "0.05"},
        accounts={"tier:gold": {"max_lines": 50}})
    standard = copy.deepcopy(SHOPIFY_ORDER)
    standard["customer"]["tags"] = ""
    shop_api = api
    r = await post_shopify(shop_api, standard, delivery="d1")
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (422, "rule_max_lines", "lines")
    # A gold account may send more lines; the rotor's price is 6.7% off its list price.
    r = await post_shopify(shop_api, SHOPIFY_ORDER, delivery="d2")
    assert (r.json()["error"], r.json()["field"]) == ("rule_price_tolerance",
                                                      "lines[1].unit_price")
    cheap = copy.deepcopy(SHOPIFY_ORDER)
    cheap["line_items"][1]["price"] = "29.00"
    del cheap["customer"]["phone"]
    del cheap["shipping_address"]["phone"]
    r = await post_shopify(shop_api, cheap, delivery="d3")
    assert (r.json()["error"], r.json()["field"]) == ("rule_require_phone", "customer.phone")
    cheap["customer"]["phone"] = "+16135550182"
    r = await post_shopify(shop_api, cheap, delivery="d4")
    assert r.status_code == 201, r.text
    reasons = [r.reason for r in await rows(db, "SELECT reason FROM intakes ORDER BY id")]
    assert reasons == ["rule_max_lines", "rule_price_tolerance", "rule_require_phone", None]


async def test_a_channels_own_skus_are_mapped_to_ours(api):
    await make_product(api, "OUR-PAD")
    await make_product(api, "SHOP-ROTOR")
    await channel(api, "shop", "shopify", validation={"sku_map": {"SHOP-PAD": "OUR-PAD"}})
    r = await post_shopify(api, SHOPIFY_ORDER)
    assert r.status_code == 201, r.text
    order = (await api.get(f"/orders/{r.json()['order_id']}")).json()
    assert [ln["sku"] for ln in order["lines"]] == ["OUR-PAD", "SHOP-ROTOR"]


async def test_an_unknown_sku_is_parked_dead_alerted_and_replayed_once_the_product_exists(
        api, db, settings):
    await make_product(api, "SHOP-ROTOR")
    await channel(api, "shop", "shopify")
    r = await post_shopify(api, SHOPIFY_ORDER)
    assert r.status_code == 202, r.text
    dead = r.json()
    assert (dead["state"], dead["reason"], dead["field"]) == ("dead", "unknown_sku",
                                                              "lines[0].sku")
    small = copy.deepcopy(SHOPIFY_ORDER)
    small["order_number"], small["line_items"] = 1002, small["line_items"][:1]
    small["line_items"][0]["price"] = "1.00"
    assert (await post_shopify(api, small, delivery="d-small")).status_code == 202
    listed = (await api.get("/ops/intake", params={"state": "dead"})).json()
    assert [i["order_number"] for i in listed["items"]] == ["1001", "1002"]  # value first
    assert listed["items"][0]["order_value"] == "64.0000"

    alerts = await rows(db, "SELECT event, audience, facts FROM notifications "
                            "WHERE event = 'intake_dead'")
    assert len(alerts) == len(settings.staff_sales)  # once per channel and reason, not twice
    assert alerts[0].facts["intake"]["reason"] == "unknown_sku"
    assert alerts[0].facts["intake"]["order_number"] == "1001"

    await make_product(api, "SHOP-PAD")
    r = await api.post("/ops/intake/replay", json={"reason": "unknown_sku"})
    assert r.status_code == 200, r.text
    assert r.json() == {"reason": "unknown_sku", "replayed": 2, "accepted": 2, "rejected": 0,
                        "dead": 0}
    replayed = (await api.get("/ops/intake", params={"state": "accepted"})).json()["items"]
    assert {i["id"] for i in replayed} == {dead["intake_id"], replayed[1]["id"]}
    assert all(i["order_id"] and i["attempts"] == 2 for i in replayed)
    assert await scalar(db, "SELECT count(*) FROM orders") == 2
    r = await api.post(f"/ops/intake/{dead['intake_id']}/replay")
    assert r.status_code == 409 and r.json()["error"] == "already_accepted"
    # The redelivery of an intake accepted on replay answers with its order.
    again = await post_shopify(api, SHOPIFY_ORDER)
    assert again.status_code == 200
    assert again.json()["order_id"] in {i["order_id"] for i in replayed}


async def test_a_database_failure_while_placing_parks_the_payload_for_a_retry(
        shop, db, monkeypatch):
    async def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake_service.orders, "place_order", down)
    r = await post_shopify(shop, SHOPIFY_ORDER)
    assert r.status_code == 202 and r.json()["reason"] == "database_unavailable"
    [stored] = await rows(db, "SELECT state, transient, next_attempt_at, body FROM intakes")
    assert stored.state == "dead" and stored.transient and stored.next_attempt_at is not None
    assert json.loads(stored.body) == SHOPIFY_ORDER
    monkeypatch.undo()
    r = await shop.post(f"/ops/intake/{r.json()['intake_id']}/replay")
    assert r.status_code == 200 and r.json()["state"] == "accepted"


async def test_the_worker_retries_a_transient_failure_with_backoff_then_leaves_it_to_ops(
        shop, db, settings, monkeypatch):
    async def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake_service.orders, "place_order", down)
    first = (await post_shopify(shop, SHOPIFY_ORDER)).json()
    due = "UPDATE intakes SET next_attempt_at = now() - interval '1 second'"
    gaps = []
    for _ in intake_service.RETRY_BACKOFF:
        async with db.begin() as conn:
            await conn.execute(sa.text(due))
        assert await intake_service.retry_due(db, settings) == 1
        [row] = await rows(db, "SELECT attempts, transient, "
                               "extract(epoch FROM next_attempt_at - updated_at) AS gap FROM intakes")
        gaps.append(round(float(row.gap)) if row.gap is not None else None)
    assert gaps[:4] == [120, 600, 3600, 14400] and gaps[4] is None
    assert (row.attempts, row.transient) == (6, False)  # retried enough: ops decide
    async with db.begin() as conn:
        await conn.execute(sa.text(due))
    assert await intake_service.retry_due(db, settings) == 0

    monkeypatch.undo()
    async with db.begin() as conn:
        await conn.execute(sa.text("UPDATE intakes SET transient = true, "
                                   "next_attempt_at = now() - interval '1 second'"))
    assert await intake_service.retry_due(db, settings) == 1
    [row] = await rows(db, "SELECT state, order_id FROM intakes")
    assert row.state == "accepted" and row.order_id is not None
    audited = await rows(db, "SELECT actor, resource, detail FROM audit_log "
                             "WHERE path LIKE '/ops/intake/%' ORDER BY id")
    assert {a.actor for a in audited} == {"intake retry"} and len(audited) == 6
    assert audited[-1].resource == str(row.order_id)
    assert audited[0].detail == "intake dead: database_unavailable"
    assert first["state"] == "dead"


async def test_webhooks_to_a_native_or_unknown_channel_are_refused(api):
    r = await api.put("/channels/web", json={"kind": "native"})
    assert r.status_code == 201, r.text
    r = await api.post("/channels/web/orders", content=b"{}")
    assert r.status_code == 422 and r.json()["error"] == "not_a_webhook_channel"
    r = await api.post("/channels/nowhere/orders", content=b"{}")
    assert r.status_code == 404
    r = await api.put("/channels/web", json={"kind": "native", "secret": "x" * 20})
    assert r.status_code == 422 and r.json()["field"] == "secret"


# --- EDI 850 -------------------------------------------------------------------------------

X12_850 = (
    "ISA*00*          *00*          *ZZ*FLEETPARTS     *ZZ*BACKORDERS     *261130*1015*U*00401"
    "*000000905*0*P*>~\n"
    "GS*PO*FLEETPARTS*BACKORDERS*20261130*1015*905*X*004010~\n"
    "ST*850*0001~\n"
    "BEG*00*SA*PO-7781**20261130~\n"
    "N1*BY*Fleet Parts Inc*92*FLEET-01~\n"
    "PER*BD*Dana Ruiz*EM*dana@fleet.example*TE*6135550182~\n"
    "PO1*1*10*EA*12.50**VP*EDI-PAD*BP*FP-99~\n"
    "PO1*2*4*EA*30**VP*EDI-ROTOR~\n"
    "PO1*3*2*EA*5**VP*EDI-CLIP~\n"
    "CTT*3~\n"
    "SE*9*0001~\n"
    "GE*1*905~\n"
    "IEA*1*000000905~\n"
)


async def post_850(api, document: str, name: str = "fleet") -> httpx.Response:
    body = document.encode()
    return await api.post(f"/channels/{name}/orders", content=body, headers={
        "content-type": "application/edi-x12", "X-Backorders-Signature": sign(body)})


@pytest.fixture
async def edi(api) -> Any:
    await make_product(api, "EDI-PAD", on_hand=6)
    await make_product(api, "EDI-CLIP", on_hand=5)
    await make_product(api, "EDI-ROTOR")
    r = await api.put("/purchase-orders/PO-SUP-1", json={
        "supplier": {"id": "acme", "name": "Acme"},
        "lines": [{"sku": "EDI-ROTOR", "quantity": 10, "expected_at": "2030-03-01"}]})
    assert r.status_code in (200, 201), r.text
    await channel(api, "fleet", "edi850")
    return api


async def test_an_x12_850_is_answered_with_its_997_and_becomes_the_order(edi, db):
    r = await post_850(edi, X12_850)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/edi-x12")
    assert r.headers["x-intake-state"] == "accepted"
    ack = r.text
    assert ack.startswith("ISA*00*") and "*ZZ*BACKORDERS     *ZZ*FLEETPARTS     *" in ack
    assert "ST*997*0001~AK1*PO*905~AK2*850*0001~AK5*A~AK9*A*1*1*1~SE*6*0001~" in ack
    [stored] = await rows(db, "SELECT order_id FROM intakes")
    order = (await edi.get(f"/orders/{stored.order_id}")).json()
    assert (order["channel"], order["order_number"]) == ("fleet", "PO-7781")
    assert order["customer"] == {"id": "FLEET-01", "email": "dana@fleet.example",
                                 "phone": "+16135550182", "tier": "standard"}
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [
        ("EDI-PAD", 10, "12.5000"), ("EDI-ROTOR", 4, "30.0000"), ("EDI-CLIP", 2, "5.0000")]
    again = await post_850(edi, X12_850)  # the same interchange (ISA06 + ISA13) again
    assert again.status_code == 200 and again.headers["x-intake-id"] == r.headers["x-intake-id"]
    assert await scalar(db, "SELECT count(*) FROM orders") == 1


async def test_the_855_says_per_line_accepted_backordered_or_partly_backordered(edi, db):
    r = await post_850(edi, X12_850)
    intake_id = r.headers["x-intake-id"]
    ack = await edi.get(f"/channels/fleet/acknowledgements/{intake_id}")
    assert ack.status_code == 200, ack.text
    segments = ack.text.split("~")
    assert "ST*855*0001" in segments and "BAK*00*AC*PO-7781*" in ack.text
    order = (await edi.get("/orders", params={"channel": "fleet",
                                              "order_number": "PO-7781"})).json()
    rotor = order["lines"][1]
    expected = rotor["expected_date"].replace("-", "")
    assert segments[segments.index("PO1*1*10*EA*12.5**VP*EDI-PAD") + 1] == "ACK*BP*4*EA"
    assert segments[segments.index("PO1*2*4*EA*30**VP*EDI-ROTOR") + 1] == \
        f"ACK*IB*4*EA*068*{expected}"
    assert segments[segments.index("PO1*3*2*EA*5**VP*EDI-CLIP") + 1] == "ACK*IA*2*EA"
    assert "CTT*3" in segments


async def test_an_850_that_cannot_be_read_gets_a_rejecting_997(edi, db):
    broken = X12_850.replace("PO1*2*4*EA*30**VP*EDI-ROTOR~\n", "PO1*2*four*EA*30**VP*EDI-ROTOR~\n")
    r = await post_850(edi, broken.replace("000000905", "000000906"))
    assert r.status_code == 422
    assert r.headers["x-intake-state"] == "rejected"
    assert r.headers["x-intake-reason"] == "unreadable_order"
    assert "AK5*R*5~AK9*R*1*1*0~" in r.text
    [stored] = await rows(db, "SELECT state, field FROM intakes")
    assert (stored.state, stored.field) == ("rejected", "PO1[2].PO102")
    r = await post_850(edi, "not an interchange")
    assert r.status_code == 422 and r.json()["error"] == "malformed_payload"


async def test_a_channel_key_reads_only_its_own_channels_855(edi, db, settings):
    from tests.support import bearer, new_key

    r = await post_850(edi, X12_850)
    intake_id = r.headers["x-intake-id"]
    own = await new_key(db, settings, Role.CHANNEL, channel="fleet")
    other = await new_key(db, settings, Role.CHANNEL, channel="web")
    path = f"/channels/fleet/acknowledgements/{intake_id}"
    assert (await edi.get(path, headers=bearer(own))).status_code == 200
    assert (await edi.get(path, headers=bearer(other))).status_code == 404


# --- POST /orders through the same flow -----------------------------------------------------


async def test_every_post_orders_payload_is_recorded_however_it_ends(api, db):
    from tests.support import order_body

    await make_product(api, "NAT-1")
    ok = await api.post("/orders", json=order_body("N-1", [("NAT-1", 1)]))
    assert ok.status_code == 201, ok.text
    again = await api.post("/orders", json=order_body("N-1", [("NAT-1", 1)]))
    assert again.status_code == 200
    unknown = await api.post("/orders", json=order_body("N-2", [("NOPE", 1)]))
    assert unknown.status_code == 422
    garbled = await api.post("/orders", content=b'{"channel": "web", "lines": 3}',
                             headers={"content-type": "application/json"})
    assert garbled.status_code == 422
    kept = await rows(db, "SELECT channel, state, reason, signature, order_id, body "
                          "FROM intakes ORDER BY id")
    assert [(k.channel, k.state, k.reason, k.signature) for k in kept] == [
        ("web", "accepted", None, "key"), ("web", "accepted", "duplicate_order", "key"),
        ("web", "rejected", "unknown_sku", "key"), ("unknown", "rejected", "validation_error", "key")]
    assert str(kept[0].order_id) == ok.json()["id"] and kept[1].order_id == kept[0].order_id
    assert bytes(kept[3].body) == b'{"channel": "web", "lines": 3}'


async def test_a_registered_native_channels_rules_apply_to_post_orders(api, db):
    from tests.support import order_body

    await make_product(api, "NAT-2")
    r = await api.put("/channels/phone", json={"kind": "native",
                                               "validation": {"require_phone": True}})
    assert r.status_code == 201, r.text
    r = await api.post("/orders", json=order_body("P-1", [("NAT-2", 1)], channel="phone"))
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (
        422, "rule_require_phone", "customer.phone")
    assert await scalar(db, "SELECT count(*) FROM orders") == 0
