"""Every operation in the OpenAPI document, called by every role and by nobody: the
answer's class is the one this table expects. A new route without an entry here (and
a rule in `api/access.py`) fails."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.access import RULES
from backorders.domain.access import Role
from tests.support import bearer, new_key, no_unaudited_writes, rows

PUBLIC = "public"
CHANNEL, ERP, OPS, ADMIN = Role.CHANNEL, Role.ERP, Role.OPS, Role.ADMIN

EXPECTED: dict[str, set[Role] | str] = {
    "POST /orders": {CHANNEL, ADMIN},
    "GET /orders": {CHANNEL, ERP, OPS, ADMIN},
    "GET /orders/{order_id}": {CHANNEL, ERP, OPS, ADMIN},
    "POST /orders/{order_id}/cancel": {CHANNEL, OPS, ADMIN},
    "GET /backorders": {CHANNEL, ERP, OPS, ADMIN},
    "GET /backorders/{line_id}": {CHANNEL, ERP, OPS, ADMIN},
    "POST /backorders/{line_id}/delay": {OPS, ADMIN},
    "PUT /products/{sku}": {ERP, ADMIN},
    "GET /products/{sku}": {ERP, OPS, ADMIN},
    "PUT /inventory/{sku}": {ERP, ADMIN},
    "GET /inventory/{sku}": {ERP, OPS, ADMIN},
    "POST /receipts": {ERP, ADMIN},
    "GET /receipts/{receipt_id}": {ERP, OPS, ADMIN},
    "PUT /purchase-orders/{po_number}": {ERP, ADMIN},
    "GET /purchase-orders/{po_number}": {ERP, OPS, ADMIN},
    "GET /suppliers": {ERP, OPS, ADMIN},
    "GET /suppliers/{supplier_id}/performance": {ERP, OPS, ADMIN},
    "GET /refunds": {ERP, OPS, ADMIN},
    "PUT /customers/{customer_id}/preferences": {OPS, ADMIN},
    "GET /customers/{customer_id}/preferences": {OPS, ADMIN},
    "GET /notifications": {OPS, ADMIN},
    "GET /ops/outbox": {OPS, ADMIN},
    "POST /ops/outbox/{message_id}/replay": {OPS, ADMIN},
    "GET /ops/audit": {OPS, ADMIN},
    "GET /ops/intake": {OPS, ADMIN},
    "POST /ops/intake/{intake_id}/replay": {OPS, ADMIN},
    "POST /ops/intake/replay": {OPS, ADMIN},
    "PUT /channels/{name}": {ADMIN},
    "GET /channels": {OPS, ADMIN},
    "POST /channels/{name}/orders": PUBLIC,
    "GET /channels/{name}/acknowledgements/{intake_id}": {CHANNEL, ERP, OPS, ADMIN},
    "GET /kpis": {OPS, ADMIN},
    "GET /kpis/series": {OPS, ADMIN},
    "GET /forecast/{sku}": {ERP, OPS, ADMIN},
    "GET /replenishment": {ERP, OPS, ADMIN},
    "POST /admin/keys": {ADMIN},
    "GET /admin/keys": {ADMIN},
    "DELETE /admin/keys/{key_id}": {ADMIN},
    "GET /customers/{customer_id}/opt-out": PUBLIC,
    "POST /sms/inbound": PUBLIC,
    "GET /health": PUBLIC,
    "GET /health/live": PUBLIC,
    "GET /health/ready": PUBLIC,
}

SAMPLE = {"uuid": str(uuid.UUID(int=7)), "integer": 1, "key_id": "0123456789ab"}


def _value(param: dict[str, Any]) -> Any:
    schema = param.get("schema", {})
    if param["name"] == "key_id":
        return SAMPLE["key_id"]
    if schema.get("format") == "uuid":
        return SAMPLE["uuid"]
    if schema.get("type") == "integer":
        return SAMPLE["integer"]
    if param["name"] == "channel":
        return "web"  # the channel key's own, so only the rule is tested
    if param["name"] == "token":
        return "00"
    return "ACCESS-1"


def _request(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    query: dict[str, Any] = {}
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", str(_value(param)))
        elif param["in"] == "query" and param.get("required"):
            query[param["name"]] = _value(param)
    return path, query


def _operations(app: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(f"{method.upper()} {path}", method.upper(), path, operation)
            for path, item in app.openapi()["paths"].items() for method, operation in item.items()]


@pytest.fixture
def app(settings, db, temporal_env):
    from api.app import create_app

    return create_app(settings, engine=db, client=temporal_env.client)


def test_every_operation_in_the_document_has_an_expected_answer_and_a_rule(app):
    names = {name for name, *_ in _operations(app)}
    assert names == set(EXPECTED), (
        f"without an entry here: {sorted(names - set(EXPECTED))}; "
        f"entries for no operation: {sorted(set(EXPECTED) - names)}")
    for name in names:
        assert name in RULES


async def test_each_role_and_nobody_get_the_expected_class_of_answer_on_every_operation(
        app, db, settings, worker):
    callers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in Role:
        key = await new_key(db, settings, role, channel="web" if role is CHANNEL else None)
        callers[role.value] = bearer(key)
    unexpected = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://access") as client:
            for name, method, path, operation in _operations(app):
                url, query = _request(path, operation)
                allowed = EXPECTED[name]
                body = {"json": {}} if "requestBody" in operation and name != "POST /sms/inbound" else {}
                answers = {}
                for who, headers in callers.items():
                    r = await client.request(method, url, params=query, headers=headers, **body)
                    answers[who] = r.status_code
                    if r.status_code >= 500:
                        unexpected.append(f"{name} as {who}: {r.status_code} {r.text[:200]}")
                        continue
                    if allowed == PUBLIC:
                        continue
                    assert isinstance(allowed, set)
                    payload = r.json() if r.headers.get("content-type", "").startswith(
                        "application/json") else None
                    error = payload.get("error") if isinstance(payload, dict) else None
                    if who == "anonymous":
                        expected_ok = r.status_code == 401 and error == "unauthorized"
                    elif Role(who) in allowed:
                        expected_ok = r.status_code not in (401, 403) or error not in (
                            "unauthorized", "forbidden")
                    else:
                        expected_ok = (r.status_code == 403 and error == "forbidden"
                                       and "needs a key with role" in payload["message"])
                    if not expected_ok:
                        unexpected.append(f"{name} as {who}: {r.status_code} {r.text[:200]}")
                if allowed == PUBLIC and len(set(answers.values())) != 1:
                    unexpected.append(f"{name} answers differently with a key: {answers}")
    assert not unexpected, "\n".join(unexpected)

    # Every write a role that may make it sent is in the audit trail, whatever its end
    # (refusals by role are too, but they prove nothing about the route), and none that
    # completed was recorded outside its transaction.
    audited = {(r.method, r.path, r.role) for r in await rows(
        db, "SELECT method, path, role FROM audit_log")}
    for name, method, path, _ in _operations(app):
        allowed = EXPECTED[name]
        if method in ("POST", "PUT", "DELETE") and allowed != PUBLIC:
            assert isinstance(allowed, set)
            assert any((method, path, role.value) in audited for role in allowed), \
                f"{name} left no audit entry for a role allowed to call it"
    await no_unaudited_writes(db)
