"""API keys, roles, channel scoping, the audit trail, rate limits and the body cap, through
the API as callers meet them."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backorders import __main__ as cli
from backorders.domain.access import Role
from backorders.services import audit as audit_trail
from backorders.settings import DefaultSecret, Settings
from tests.support import bearer, make_product, new_key, order_body, rows, scalar


@asynccontextmanager
async def serving(settings, db, temporal_env):
    """The app, with clients made per key (`as_key`)."""
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)

        def as_key(key: str | None) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, base_url="http://access",
                                     headers=bearer(key) if key else {})

        yield as_key


@pytest.fixture
async def as_key(settings, db, temporal_env, worker):
    async with serving(settings, db, temporal_env) as make:
        yield make


async def key_for(db, settings, role: Role, channel: str | None = None) -> str:
    return await new_key(db, settings, role, channel=channel)


# --- keys ---------------------------------------------------------------------------------


async def test_missing_unknown_malformed_and_revoked_keys_get_the_same_401(as_key, db, settings):
    admin = await key_for(db, settings, Role.ADMIN)
    ops = await key_for(db, settings, Role.OPS)
    async with as_key(admin) as api:
        made = (await api.post("/admin/keys", json={"name": "old", "role": "ops"})).json()
        assert (await api.delete(f"/admin/keys/{made['id']}")).status_code == 200
    forged = ops[:-4] + ("AAAA" if not ops.endswith("AAAA") else "BBBB")
    answers = []
    for key in (None, "nonsense", f"bo_{'0' * 12}_{'x' * 43}", forged, made["key"]):
        async with as_key(key) as api:
            r = await api.get("/notifications")
        assert r.status_code == 401, (key, r.text)
        assert r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        answers.append(r.json()["message"])
    # A wrong secret for a real id says what an id that does not exist says.
    assert len(set(answers[1:])) == 1


async def test_a_key_is_shown_once_and_stored_only_as_a_keyed_hash(as_key, db, settings):
    admin = await key_for(db, settings, Role.ADMIN)
    async with as_key(admin) as api:
        r = await api.post("/admin/keys", json={"name": "shop", "role": "channel", "channel": "shop"})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["key"].startswith(f"bo_{made['id']}_") and len(made["key"]) > 50
        assert made["role"] == "channel" and made["channel"] == "shop"
        listed = (await api.get("/admin/keys")).json()
    entry = next(k for k in listed if k["id"] == made["id"])
    assert "key" not in entry and "secret_hash" not in entry
    secret = made["key"].split("_", 2)[2]
    stored = await rows(db, "SELECT * FROM api_keys WHERE id = :id", id=made["id"])
    assert all(secret not in str(v) for v in stored[0]._mapping.values())
    assert len(stored[0].secret_hash) == 32


async def test_revoking_a_key_refuses_its_very_next_request(as_key, db, settings):
    admin = await key_for(db, settings, Role.ADMIN)
    erp = await key_for(db, settings, Role.ERP)
    async with as_key(erp) as api:
        assert (await api.get("/suppliers")).status_code == 200
    erp_id = erp.split("_")[1]
    async with as_key(admin) as api:
        revoked = await api.delete(f"/admin/keys/{erp_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert (await api.delete(f"/admin/keys/{erp_id}")).status_code == 200  # again: no change
        assert (await api.delete("/admin/keys/0123456789ab")).status_code == 404
    async with as_key(erp) as api:
        assert (await api.get("/suppliers")).status_code == 401


async def test_the_last_working_admin_key_cannot_be_revoked_through_the_api(as_key, db, settings):
    admin = await key_for(db, settings, Role.ADMIN)
    async with as_key(admin) as api:
        r = await api.delete(f"/admin/keys/{admin.split('_')[1]}")
        assert r.status_code == 409 and r.json()["error"] == "last_admin_key"
        assert (await api.get("/admin/keys")).status_code == 200


async def test_a_channel_key_must_name_a_channel_and_no_other_key_may(as_key, db, settings):
    admin = await key_for(db, settings, Role.ADMIN)
    async with as_key(admin) as api:
        r = await api.post("/admin/keys", json={"name": "x", "role": "channel"})
        assert r.status_code == 422 and r.json()["field"] == "channel"
        r = await api.post("/admin/keys", json={"name": "x", "role": "erp", "channel": "web"})
        assert r.status_code == 422 and r.json()["field"] == "channel"
        r = await api.post("/admin/keys", json={"name": "x", "role": "root"})
        assert r.status_code == 422 and r.json()["field"] == "role"
    assert await scalar(db, "SELECT count(*) FROM api_keys") == 1


# --- roles and channel scope -----------------------------------------------------------


async def test_roles_are_refused_what_they_may_not_do_and_nothing_changes(as_key, db, settings):
    erp, ops = await key_for(db, settings, Role.ERP), await key_for(db, settings, Role.OPS)
    async with as_key(erp) as api:
        await make_product(api, "ACL-1", on_hand=5)
    async with as_key(ops) as api:
        r = await api.post("/receipts", json={"receipt_id": "ACL-R", "sku": "ACL-1", "quantity": 3})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert "erp or admin" in r.json()["message"]
        r = await api.put("/inventory/ACL-1", json={"on_hand": 0})
        assert r.status_code == 403
    async with as_key(erp) as api:
        assert (await api.get("/notifications")).status_code == 403
        assert (await api.get("/ops/audit")).status_code == 403
        assert (await api.get("/inventory/ACL-1")).json()["on_hand"] == 5
    assert await scalar(db, "SELECT count(*) FROM receipts") == 0


async def test_a_channel_key_places_reads_and_cancels_only_its_own_channels_orders(
        as_key, db, settings):
    erp = await key_for(db, settings, Role.ERP)
    web, shop = (await key_for(db, settings, Role.CHANNEL, "web"),
                 await key_for(db, settings, Role.CHANNEL, "shop"))
    async with as_key(erp) as api:
        await make_product(api, "CH-1", on_hand=1)
    async with as_key(web) as api:
        r = await api.post("/orders", json=order_body("W-1", [("CH-1", 3)], channel="web"))
        assert r.status_code == 201, r.text
        web_order = r.json()
        r = await api.post("/orders", json=order_body("W-2", [("CH-1", 1)], channel="shop"))
        assert r.status_code == 403 and r.json()["field"] == "channel"
    async with as_key(shop) as api:
        shop_order = (await api.post("/orders", json=order_body("S-1", [("CH-1", 2)],
                                                               channel="shop"))).json()
        # Another channel's order is one this key cannot tell from one that does not
        # exist: the same answer, word for word.
        for path in ("/orders/{}", "/orders/{}/cancel", "/backorders/{}"):
            real = web_order["id"] if "orders" in path else web_order["lines"][0]["id"]
            method = api.post if path.endswith("cancel") else api.get
            theirs, missing = await method(path.format(real)), await method(
                path.format("00000000-0000-4000-8000-000000000000"))
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json() == {**missing.json(), "message": missing.json()["message"]
                                     .replace("00000000-0000-4000-8000-000000000000", real)}
        r = await api.get("/orders", params={"channel": "web", "order_number": "W-1"})
        assert r.status_code == 403
        listed = (await api.get("/backorders")).json()
        assert {i["order_id"] for i in listed["items"]} == {shop_order["id"]}
        # Nothing else is open to a channel.
        assert (await api.get("/suppliers")).status_code == 403
        assert (await api.put("/products/CH-1", json={})).status_code == 403
    async with as_key(web) as api:
        assert (await api.get(f"/orders/{web_order['id']}")).json()["status"] != "cancelled"
        r = await api.get("/orders", params={"channel": "web", "order_number": "W-1"})
        assert r.status_code == 200
        cancelled = await api.post(f"/orders/{web_order['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["lines"][0]["cancelled_quantity"] == 2  # the waiting units
    assert await scalar(db, "SELECT count(*) FROM orders WHERE order_number = 'W-2'") == 0


# --- the audit trail ---------------------------------------------------------------------


async def test_writes_are_audited_with_who_what_and_how_they_ended(as_key, db, settings):
    erp = await key_for(db, settings, Role.ERP)
    ops = await key_for(db, settings, Role.OPS)
    erp_id = erp.split("_")[1]
    async with as_key(erp) as api:
        await make_product(api, "AUD-1", on_hand=2)
        assert (await api.post("/receipts", json={"receipt_id": "AUD-R", "sku": "NOPE",
                                                  "quantity": 1})).status_code == 422
        assert (await api.post("/receipts", json={"receipt_id": "AUD-R2", "sku": "AUD-1",
                                                  "quantity": 1})).status_code == 201
        assert (await api.post("/receipts", json={"receipt_id": "AUD-R2", "sku": "AUD-1",
                                                  "quantity": 1})).status_code == 200
    async with as_key(ops) as api:
        assert (await api.put("/products/AUD-1", json={})).status_code == 403
        page = (await api.get("/ops/audit", params={"key_id": erp_id})).json()["items"]
        by_sku = (await api.get("/ops/audit", params={"resource": "AUD-1"})).json()["items"]
        later = (await api.get("/ops/audit", params={
            "since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})).json()["items"]
        one = (await api.get("/ops/audit", params={"limit": 1})).json()["items"]
    assert [(e["method"], e["path"], e["outcome"], e["status"], e["detail"]) for e in page] == [
        ("POST", "/receipts", "accepted", None, "replayed"),
        ("POST", "/receipts", "accepted", None, None),
        ("POST", "/receipts", "rejected", 422, "unknown_sku: no product with SKU 'NOPE'"),
        ("PUT", "/inventory/{sku}", "accepted", None, None),
        ("PUT", "/products/{sku}", "accepted", None, None),
    ]
    assert all(e["key_id"] == erp_id and e["actor"] == "erp (tests)" and e["role"] == "erp"
               for e in page)
    assert page[0]["resource"] == "AUD-R2"
    newest = by_sku[0]
    assert (newest["actor"], newest["outcome"], newest["status"]) == ("ops (tests)", "rejected", 403)
    assert later == [] and len(one) == 1


async def test_an_audited_change_and_its_record_commit_or_fail_together(
        as_key, db, settings, monkeypatch):
    erp = await key_for(db, settings, Role.ERP)
    real = audit_trail.record

    async def failing(conn, audit, outcome, **kwargs):
        if outcome == "accepted":
            raise RuntimeError("the audit row could not be written")
        return await real(conn, audit, outcome, **kwargs)

    monkeypatch.setattr(audit_trail, "record", failing)
    async with as_key(erp) as api:
        r = await api.put("/products/TXN-1", json={})
    assert r.status_code == 500 and r.json()["error"] == "internal_error"
    assert await scalar(db, "SELECT count(*) FROM products WHERE sku = 'TXN-1'") == 0
    failed = await rows(db, "SELECT outcome, status FROM audit_log WHERE resource = 'TXN-1'")
    assert [(r.outcome, r.status) for r in failed] == [("failed", 500)]


async def test_an_order_is_audited_under_its_new_id(as_key, db, settings):
    erp, web = await key_for(db, settings, Role.ERP), await key_for(db, settings, Role.CHANNEL, "web")
    async with as_key(erp) as api:
        await make_product(api, "AUD-O", on_hand=1)
    async with as_key(web) as api:
        order = (await api.post("/orders", json=order_body("AO-1", [("AUD-O", 1)]))).json()
    entry = (await rows(db, "SELECT * FROM audit_log WHERE path = '/orders'"))[0]
    assert entry.resource == order["id"] and entry.outcome == "accepted"
    assert entry.detail == "created web order AO-1"


async def test_a_channel_cannot_redirect_the_messages_of_another_channels_customer(
        as_key, db, settings):
    erp = await key_for(db, settings, Role.ERP)
    web, shop = (await key_for(db, settings, Role.CHANNEL, "web"),
                 await key_for(db, settings, Role.CHANNEL, "shop"))
    async with as_key(erp) as api:
        await make_product(api, "CUS-1", on_hand=5)
    async with as_key(web) as api:
        body = order_body("CW-1", [("CUS-1", 1)], customer="vip", tier="gold", channel="web")
        assert (await api.post("/orders", json=body)).status_code == 201
        body = order_body("CW-2", [("CUS-1", 1)], customer="vip", tier="gold", channel="web")
        body["customer"]["email"] = "vip@new.example"  # the customer's own channel may
        assert (await api.post("/orders", json=body)).status_code == 201
    async with as_key(shop) as api:
        body = order_body("CS-1", [("CUS-1", 1)], customer="vip", channel="shop")
        body["customer"]["email"] = "attacker@evil.example"
        assert (await api.post("/orders", json=body)).status_code == 201
    [customer] = await rows(db, "SELECT email, tier FROM customers WHERE id = 'vip'")
    assert (customer.email, customer.tier) == ("vip@new.example", "gold")


async def test_the_audit_trail_names_an_id_as_the_api_spells_it(as_key, db, settings):
    admin, ops = await key_for(db, settings, Role.ADMIN), await key_for(db, settings, Role.OPS)
    async with as_key(admin) as api:
        await make_product(api, "AUD-C", on_hand=0)
        order = (await api.post("/orders", json=order_body("AC-1", [("AUD-C", 1)]))).json()
    async with as_key(ops) as api:
        shouted = order["id"].upper().replace("-", "")
        assert (await api.post(f"/orders/{shouted}/cancel")).status_code == 200
        found = (await api.get("/ops/audit", params={"resource": order["id"]})).json()["items"]
    assert [(e["method"], e["path"]) for e in found] == [
        ("POST", "/orders/{order_id}/cancel"), ("POST", "/orders")]


async def test_a_write_its_route_did_not_audit_is_flagged_not_called_rejected(
        settings, db, temporal_env, worker, monkeypatch):
    from api import access
    from api.app import create_app

    app = create_app(settings, engine=db, client=temporal_env.client)

    @app.post("/unaudited")
    async def unaudited() -> dict[str, str]:
        return {"changed": "yes"}

    monkeypatch.setitem(access.RULES, "POST /unaudited", access.allow(Role.OPS))
    key = await key_for(db, settings, Role.OPS)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://access", headers=bearer(key)) as api:
            assert (await api.post("/unaudited")).status_code == 200
    [entry] = await rows(db, "SELECT outcome, status, detail FROM audit_log")
    assert (entry.outcome, entry.status, entry.detail) == ("accepted", 200, access.UNAUDITED)


# --- limits --------------------------------------------------------------------------------


async def test_probes_are_not_counted_against_the_address_bad_keys_come_from(
        settings, db, temporal_env, worker):
    limited = settings.model_copy(update={"api_rate_limit": "2/minute"})
    async with serving(limited, db, temporal_env) as as_key:
        async with as_key("bo_000000000000_" + "x" * 43) as api:
            assert [(await api.get("/notifications")).status_code for _ in range(3)] == [
                401, 401, 429]
            assert (await api.get("/health")).status_code == 200


async def test_a_key_past_its_rate_limit_gets_429_with_retry_after(settings, db, temporal_env,
                                                                  worker):
    limited = settings.model_copy(update={"api_rate_limit": "3/minute"})
    first, second = await key_for(db, limited, Role.OPS), await key_for(db, limited, Role.OPS)
    async with serving(limited, db, temporal_env) as as_key:
        async with as_key(first) as api:
            statuses = [(await api.get("/suppliers")).status_code for _ in range(4)]
            r = await api.get("/suppliers")
        async with as_key(second) as other:
            assert (await other.get("/suppliers")).status_code == 200  # its own budget
    assert statuses == [200, 200, 200, 429]
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_a_body_over_the_cap_gets_413_and_changes_nothing(settings, db, temporal_env, worker):
    capped = settings.model_copy(update={"api_max_body_bytes": 2_000})
    erp = await key_for(db, capped, Role.ERP)
    async with serving(capped, db, temporal_env) as as_key, as_key(erp) as api:
        r = await api.put("/products/BIG-1", json={"name": "x" * 150, "pad": "y" * 3_000})
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "payload_too_large"
        # A body without a declared length is counted as it arrives.
        async def chunks():
            yield b'{"name": "'
            for _ in range(30):
                yield b"z" * 100
            yield b'"}'

        r = await api.put("/products/BIG-1", content=chunks(),
                          headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "payload_too_large"
        assert await scalar(db, "SELECT count(*) FROM products") == 0
        assert (await api.put("/products/BIG-1", json={"name": "fits"})).status_code == 201
    assert await scalar(db, "SELECT name FROM products WHERE sku = 'BIG-1'") == "fits"


# --- the command line and the secrets ------------------------------------------------------


def _cli(monkeypatch, capsys, settings: Settings, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", settings.libpq_url)
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_creates_lists_and_revokes_keys(as_key, db, settings, monkeypatch, capsys):
    import asyncio

    def run(*argv: str) -> tuple[int, str, str]:
        return _cli(monkeypatch, capsys, settings, *argv)

    code, out, _ = await asyncio.to_thread(run, "keys", "create", "--role", "channel",
                                           "--name", "Shopify", "--channel", "shopify")
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("bo_") and " " not in key
    async with as_key(key) as api:
        assert (await api.get("/backorders")).status_code == 200
    code, out, _ = await asyncio.to_thread(run, "keys", "list")
    assert code == 0 and "Shopify" in out and "shopify" in out and key.split("_", 2)[2] not in out
    code, out, _ = await asyncio.to_thread(run, "keys", "revoke", key.split("_")[1])
    assert code == 0 and "revoked" in out
    async with as_key(key) as api:
        assert (await api.get("/backorders")).status_code == 401
    code, _, err = await asyncio.to_thread(run, "keys", "create", "--role", "channel", "--name", "x")
    assert code == 2 and "--channel" in err
    entries = await rows(db, "SELECT actor, method, path, outcome FROM audit_log ORDER BY id")
    assert [(e.method, e.path, e.outcome) for e in entries] == [
        ("CLI", "keys create", "accepted"), ("CLI", "keys revoke", "accepted")]
    assert entries[0].actor.startswith("cli")


def test_servers_refuse_the_published_default_secrets_outside_the_embedded_stack():
    with pytest.raises(DefaultSecret, match="NOTIFY_SECRET and API_KEY_PEPPER"):
        Settings(_env_file=None).check_secrets()
    with pytest.raises(DefaultSecret, match="API_KEY_PEPPER"):
        Settings(_env_file=None, notify_secret="s" * 32).check_secrets()
    with pytest.raises(DefaultSecret, match="shorter than 16"):
        Settings(_env_file=None, notify_secret="", api_key_pepper="p" * 32).check_secrets()
    Settings(_env_file=None, notify_secret="s" * 32, api_key_pepper="p" * 32).check_secrets()
    Settings(_env_file=None, embedded_stack=True).check_secrets()


def test_the_api_process_will_not_start_with_a_default_secret(monkeypatch):
    from api.app import app_from_env
    from backorders.settings import get_settings

    for name in ("NOTIFY_SECRET", "API_KEY_PEPPER", "EMBEDDED_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit, match="API_KEY_PEPPER"):
            app_from_env()
    finally:
        get_settings.cache_clear()


def test_the_document_declares_the_key_and_who_may_call_each_operation():
    from api.app import create_app

    doc: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()
    assert doc["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    receipts = doc["paths"]["/receipts"]["post"]
    assert receipts["security"] == [{"ApiKey": []}]
    assert receipts["x-roles"] == ["admin", "erp"]
    assert {"401", "403", "413", "429"} <= set(receipts["responses"])
    assert doc["paths"]["/health"]["get"]["security"] == []
