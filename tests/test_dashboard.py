"""The dashboard over HTTP: who gets in, how a session starts and ends, and what each page
shows. The browser tests (test_dashboard_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.responses import Response

from api.dashboard import session
from backorders.domain.access import Role
from tests.support import make_product, new_key, order_body, rows, scalar, wait_settled

PAGES = ["/dashboard", "/dashboard/backorders", "/dashboard/backorders.csv",
         "/dashboard/products", "/dashboard/products/DASH-1",
         "/dashboard/lines/00000000-0000-4000-8000-000000000000", "/dashboard/suppliers",
         "/dashboard/notifications", "/dashboard/operations"]


def browser(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash",
                             follow_redirects=False, **kwargs)


async def cookie_for(db, settings, key_id: str) -> str:
    """A session cookie as sign-in would set it, for any key (sign-in refuses to make
    one for a channel or erp key; the gate must refuse it too)."""
    response = Response()
    await session.start(db, settings, response, key_id)
    header = next(v for k, v in response.raw_headers if k == b"set-cookie").decode()
    return header.split(";", 1)[0].split("=", 1)[1]


async def login(client: httpx.AsyncClient, key: str, next_: str = "/dashboard",
                **extra: str) -> httpx.Response:
    """Sign in as a person would: the form, with its token, then the key."""
    form = await client.get("/dashboard/login")
    token = re.search(r'name="form_token" value="([^"]+)"', form.text).group(1)
    return await client.post("/dashboard/login", data={"api_key": key, "next": next_,
                                                        "form_token": token, **extra})


@asynccontextmanager
async def signed_in(app: Any, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        r = await login(client, key)
        assert r.status_code == 303, r.text
        yield client


async def test_every_page_sends_strangers_to_sign_in_and_refuses_channel_and_erp_keys(
        app, db, settings):
    keys = {role: await new_key(db, settings, role, channel="web" if role is Role.CHANNEL else None)
            for role in Role}
    async with browser(app) as anonymous:
        for path in PAGES:
            r = await anonymous.get(path, params={"sku": "X"})
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/dashboard/login?next=%2Fdashboard")
        r = await anonymous.post("/dashboard/operations/outbox/1/replay")
        assert r.status_code == 303
    for role in (Role.CHANNEL, Role.ERP):
        cookie = await cookie_for(app.state.services.engine, settings, keys[role].split("_")[1])
        async with browser(app, cookies={session.COOKIE: cookie}) as client:
            for path in PAGES:
                r = await client.get(path)
                assert r.status_code == 403, (role, path)
                assert "ops and admin keys" in r.text
        async with browser(app, headers={"Authorization": f"Bearer {keys[role]}"}) as client:
            assert (await client.get("/dashboard")).status_code == 303  # a bearer key is no session
    for role in (Role.OPS, Role.ADMIN):
        async with signed_in(app, keys[role]) as client:
            for path in PAGES:
                r = await client.get(path)
                expected = 404 if "/lines/" in path else 200
                assert r.status_code == expected, (role, path, r.text[:300])


async def test_sign_in_sets_a_signed_httponly_samesite_cookie_and_sign_out_ends_it(
        app, db, settings):
    ops = await new_key(db, settings, Role.OPS)
    async with browser(app) as client:
        form = await client.get("/dashboard/login")
        assert 'name="api_key"' in form.text
        r = await login(client, ops, "/dashboard/backorders?sku=A")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/backorders?sku=A"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie
        assert ops.split("_", 2)[2].lower() not in cookie  # the key's secret never leaves
        page = await client.get("/dashboard")
        assert page.status_code == 200
        copied = client.cookies.get(session.COOKIE)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert (await client.post("/dashboard/logout")).status_code == 403  # no form token
        r = await client.post("/dashboard/logout", data={"csrf": token})
        assert r.status_code == 303
        assert (await client.get("/dashboard")).status_code == 303
    # Signing out ended the session itself: a copy of the cookie no longer works.
    async with browser(app, cookies={session.COOKIE: copied}) as stolen:
        assert (await stolen.get("/dashboard")).status_code == 303


async def test_sign_in_refuses_bad_keys_wrong_roles_foreign_redirects_and_forged_forms(
        app, db, settings):
    erp = await new_key(db, settings, Role.ERP)
    ops = await new_key(db, settings, Role.OPS)
    async with browser(app) as client:
        r = await login(client, "bo_nonsense")
        assert r.status_code == 401 and "not valid" in r.text and session.COOKIE not in r.cookies
        r = await login(client, erp)
        assert r.status_code == 403 and "ops or admin" in r.text
        r = await login(client, ops, "https://evil.example/")
        assert r.headers["location"] == "/dashboard"
        r = await login(client, ops, "//evil.example")
        assert r.headers["location"] == "/dashboard"
    async with browser(app) as elsewhere:  # a form posted from another site has no token
        r = await elsewhere.post("/dashboard/login", data={"api_key": ops})
        assert r.status_code == 403 and session.COOKIE not in r.cookies


async def test_a_forged_or_revoked_session_is_sent_to_sign_in(app, db, settings):
    admin = await new_key(db, settings, Role.ADMIN)
    ops = await new_key(db, settings, Role.OPS)
    forged = await cookie_for(db, settings.model_copy(
        update={"api_key_pepper": SecretStr("another pepper " * 3)}), ops.split("_")[1])
    async with browser(app, cookies={session.COOKIE: forged}) as client:
        assert (await client.get("/dashboard")).status_code == 303
    async with signed_in(app, ops) as client:
        assert (await client.get("/dashboard")).status_code == 200
        async with browser(app, headers={"Authorization": f"Bearer {admin}"}) as api:
            assert (await api.delete(f"/admin/keys/{ops.split('_')[1]}")).status_code == 200
        assert (await client.get("/dashboard")).status_code == 303


async def test_an_expired_session_posting_a_form_is_sent_back_to_the_dashboard(app):
    async with browser(app) as client:
        r = await client.post("/dashboard/operations/outbox/1/replay")
    assert r.status_code == 303 and r.headers["location"].endswith("next=%2Fdashboard")


async def test_pages_answer_with_a_strict_content_security_policy(app, db, settings):
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        r = await client.get("/dashboard")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), "no inline scripts"
    assert "http://" not in re.sub(r'href="http://127\.0\.0\.1[^"]*"', "", r.text.split("<body>")[0])


async def waiting_lines(app, db, settings) -> dict[str, Any]:
    """Three waiting lines: two for DASH-1 (covered by a purchase order), one for DASH-2
    (no supply)."""
    admin = await new_key(db, settings, Role.ADMIN)
    orders = {}
    async with browser(app, headers={"Authorization": f"Bearer {admin}"}) as api:
        await make_product(api, "DASH-1")
        await make_product(api, "DASH-2")
        r = await api.put("/purchase-orders/PO-D1", json={
            "supplier": {"id": "acme", "name": "Acme"},
            "lines": [{"sku": "DASH-1", "quantity": 5, "expected_at": "2030-01-10"}]})
        assert r.status_code in (200, 201), r.text
        for number, sku, quantity, customer in (("D-1", "DASH-1", 2, "ann"),
                                                ("D-2", "DASH-1", 3, "bob"),
                                                ("D-3", "DASH-2", 1, "ann")):
            r = await api.post("/orders",
                               json=order_body(number, [(sku, quantity)], customer=customer))
            assert r.status_code == 201, r.text
            orders[number] = r.json()
    await wait_settled(db)
    return orders


async def test_the_backorders_tab_filters_sorts_pages_and_exports_what_it_shows(app, db, settings):
    await waiting_lines(app, db, settings)
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        everything = (await client.get("/dashboard/backorders")).text
        assert "3 line(s), 6 unit(s) waiting" in everything
        one_sku = (await client.get("/dashboard/backorders", params={"sku": "DASH-1"})).text
        assert "2 line(s), 5 unit(s)" in one_sku and "D-3" not in one_sku
        no_supply = (await client.get("/dashboard/backorders?no_supply=true")).text
        assert "1 line(s), 1 unit(s)" in no_supply and ">D-3<" in no_supply
        sourcing = (await client.get("/dashboard/backorders?view=sourcing")).text
        assert ">D-3<" in sourcing and ">D-1<" not in sourcing
        closest = (await client.get("/dashboard/backorders?view=closest")).text
        assert closest.index(">D-1<") < closest.index(">D-2<") and ">D-3<" not in closest
        by_customer = (await client.get("/dashboard/backorders?customer_id=ann&sort=quantity")).text
        assert "2 line(s), 3 unit(s)" in by_customer
        bad = await client.get("/dashboard/backorders?min_age_days=soon&tier=diamond")
        assert bad.status_code == 200 and "min_age_days: must be a whole number" in bad.text
        assert "tier: must be one of" in bad.text and "3 line(s)" in bad.text
        export = await client.get("/dashboard/backorders.csv?sku=DASH-1")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(export.text)))
        assert [(r["order_number"], r["queue_position"], r["backordered_quantity"]) for r in table] \
            == [("D-1", "1", "2"), ("D-2", "2", "3")]
        assert (await client.get("/dashboard/backorders.csv?tier=diamond")).status_code == 422


async def test_product_line_and_supplier_pages_show_the_queue_timeline_and_links(
        app, db, settings):
    orders = await waiting_lines(app, db, settings)
    ops = await new_key(db, settings, Role.OPS)
    line = orders["D-2"]["lines"][0]
    async with signed_in(app, ops) as client:
        products = (await client.get("/dashboard/products")).text
        assert 'data-sku="DASH-1"' in products and "PO-D1, 10 Jan 2030" in products
        queue = (await client.get("/dashboard/products/DASH-1")).text
        assert queue.index(">D-1<") < queue.index(">D-2<")
        page = (await client.get(f"/dashboard/lines/{line['id']}")).text
        assert f"/namespaces/{settings.temporal_namespace}/workflows/{line['workflow_id']}" in page
        assert "backordered" in page and "Timeline" in page
        suppliers = (await client.get("/dashboard/suppliers")).text
        assert 'data-supplier="acme"' in suppliers


async def test_replaying_a_dead_message_needs_the_pages_token_and_is_audited(app, db, settings):
    orders = await waiting_lines(app, db, settings)
    line_id = orders["D-1"]["lines"][0]["id"]
    async with db.begin() as conn:
        dead_id = (await conn.execute(sa.text("""
            INSERT INTO outbox (kind, line_id, payload, dead_at, attempts, last_error)
            VALUES ('line.delayed', :l, '{}', now(), 25, 'boom') RETURNING id"""),
            {"l": line_id})).scalar_one()
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        page = (await client.get("/dashboard/operations")).text
        assert f'data-message="{dead_id}"' in page and "boom" in page
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        refused = await client.post(f"/dashboard/operations/outbox/{dead_id}/replay",
                                    data={"csrf": "forged"})
        assert refused.status_code == 403
        r = await client.post(f"/dashboard/operations/outbox/{dead_id}/replay",
                              data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"].endswith(f"replayed={dead_id}")
        missing = await client.post("/dashboard/operations/outbox/999999/replay",
                                    data={"csrf": token})
        assert missing.status_code == 404
    assert await scalar(db, "SELECT dead_at FROM outbox WHERE id = :i", i=dead_id) is None
    trail = await rows(db, "SELECT outcome, status, key_id FROM audit_log "
                           "WHERE path LIKE '/dashboard/%' ORDER BY id")
    assert [(t.outcome, t.status) for t in trail] == [
        ("rejected", 403), ("accepted", None), ("rejected", 404)]
    assert {t.key_id for t in trail} == {ops.split("_")[1]}


async def test_the_root_sends_people_to_the_dashboard(app):
    async with browser(app) as client:
        r = await client.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/dashboard"


async def test_dead_intakes_are_listed_and_replayed_from_the_operations_page(app, db, settings):
    from tests.test_channels import SECRET, SHOPIFY_ORDER, shopify_headers

    admin = await new_key(db, settings, Role.ADMIN)
    body = json.dumps(SHOPIFY_ORDER).encode()
    async with browser(app, headers={"Authorization": f"Bearer {admin}"}) as api:
        await make_product(api, "SHOP-ROTOR")
        r = await api.put("/channels/shop", json={"kind": "shopify", "secret": SECRET})
        assert r.status_code == 201, r.text
        r = await api.post("/channels/shop/orders", content=body, headers=shopify_headers(body))
        assert r.status_code == 202, r.text
        intake_id = r.json()["intake_id"]
        await make_product(api, "SHOP-PAD")
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        page = (await client.get("/dashboard/operations")).text
        assert f'data-intake="{intake_id}"' in page and "unknown_sku" in page
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = await client.post("/dashboard/operations/intake/replay",
                              data={"reason": "unknown_sku", "csrf": token})
        assert r.status_code == 303 and "accepted=1" in r.headers["location"]
        notice = (await client.get(r.headers["location"])).text
        assert "1 unknown_sku intake(s) replayed: 1 accepted, 0 rejected, 0 still dead." in notice
        page = (await client.get("/dashboard/operations")).text
        assert f'data-intake="{intake_id}"' not in page
    assert await scalar(db, "SELECT state FROM intakes WHERE id = :i", i=intake_id) == "accepted"


async def test_odd_query_text_is_named_on_the_page_never_a_500(app, db, settings):
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        for path in ("/dashboard?to=9999-12-31", "/dashboard?from=0001-01-01&to=0001-01-02",
                     "/dashboard/notifications?to=9999-12-31", "/dashboard/backorders?page=%C2%B2",
                     "/dashboard/backorders?min_age_days=%C2%B2",
                     "/dashboard/backorders?customer_id=%00x", "/dashboard/products?page=%C2%B2",
                     "/dashboard/operations?page=%C2%B2&replayed_reason=%3Cb%3E"):
            r = await client.get(path)
            assert r.status_code == 200, (path, r.status_code)
            assert "Some filters were ignored" in r.text, path
        assert (await client.get("/dashboard/backorders.csv?page=%C2%B2")).status_code == 422


async def test_exported_cells_a_spreadsheet_would_run_are_neutralised(app, db, settings):
    admin = await new_key(db, settings, Role.ADMIN)
    async with browser(app, headers={"Authorization": f"Bearer {admin}"}) as api:
        await make_product(api, "CSV-1")
        body = order_body('=HYPERLINK("http://x","y")', [("CSV-1", 1)], customer="+cmd|calc")
        assert (await api.post("/orders", json=body)).status_code == 201
    ops = await new_key(db, settings, Role.OPS)
    async with signed_in(app, ops) as client:
        export = (await client.get("/dashboard/backorders.csv")).text
    [row] = list(csv.DictReader(io.StringIO(export)))
    assert row["order_number"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert row["customer_id"] == "'+cmd|calc"
