"""Whatever mix of good, malformed, unsigned, unknown-SKU and redelivered payloads a
channel sends, every received payload ends accepted, rejected or dead exactly once: one
intake row per delivery (its redeliveries counted on it), one per refused signature, and
one order per order number. Hypothesis drives the real entry flow on the real
PostgreSQL; `HYPOTHESIS_EXAMPLES=200` explores further."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import uuid
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from backorders.db import create_engine, dispose
from backorders.schemas import ChannelIn, ProductIn
from backorders.services import channels, intake
from backorders.services.errors import Unauthorized
from backorders.services.inventory import put_product
from tests.test_channels import SECRET, SHOPIFY_ORDER

KINDS = ("good", "good", "redelivery", "bad_signature", "unknown_sku", "bad_field")
ACTIONS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3)), min_size=1,
                   max_size=14)


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def _payload(number: str, sku: str = "PROP-1", quantity: Any = 1) -> bytes:
    order = copy.deepcopy(SHOPIFY_ORDER)
    order["order_number"] = number
    order["line_items"] = [{**order["line_items"][0], "sku": sku, "quantity": quantity}]
    return json.dumps(order).encode()


async def _scenario(settings: Any, actions: list[tuple[str, int]]) -> None:
    engine = create_engine(settings)
    name = f"p{uuid.uuid4().hex[:12]}"
    try:
        await channels.put_channel(engine, settings, name,
                                   ChannelIn(kind="shopify", secret=SECRET))
        await put_product(engine, "PROP-1", ProductIn(), settings)
        posts: Counter[str] = Counter()
        first_state: dict[str, str] = {}
        bad_signatures = 0
        numbers: set[str] = set()
        last: tuple[bytes, dict[str, str]] | None = None
        for i, (kind, n) in enumerate(actions):
            number = f"{name}-{n}"
            delivery = f"{name}-d{i}"
            if kind == "redelivery":
                if last is None:
                    continue
                body, headers = last
            elif kind == "unknown_sku":
                body = _payload(number, sku=f"MISSING-{name}")
            elif kind == "bad_field":
                body = _payload(number, quantity="several")
            else:
                body = _payload(number)
            if kind != "redelivery":
                headers = {"X-Shopify-Hmac-Sha256": _sign(body),
                           "X-Shopify-Webhook-Id": delivery}
            if kind == "bad_signature":
                headers = {**headers, "X-Shopify-Hmac-Sha256": _sign(b"something else")}
            try:
                outcome = await intake.receive(engine, settings, name, body, headers,
                                               path=f"/channels/{name}/orders")
                state = outcome.state
            except intake.Rejected:
                state = "rejected"
            except Unauthorized:
                state = "unauthorized"
            if state == "unauthorized":
                assert kind == "bad_signature"
                bad_signatures += 1
                continue
            key = headers["X-Shopify-Webhook-Id"]
            posts[key] += 1
            first_state.setdefault(key, state)
            assert state == first_state[key], (kind, state, first_state[key])
            # An order number already taken conflicts before its SKUs are looked at.
            expected = {"good": "accepted", "bad_field": "rejected",
                        "unknown_sku": "rejected" if number in numbers else "dead"}
            if kind in expected and kind != "redelivery" and key == delivery:
                assert state == expected[kind], (kind, state)
            if state == "accepted":
                numbers.add(str(json.loads(body)["order_number"]))
            last = (body, headers)

        async with engine.connect() as conn:
            kept = (await conn.execute(sa.text(
                "SELECT delivery_id, deliveries, state, reason, order_id, order_number "
                "FROM intakes WHERE channel = :c"), {"c": name})).all()
            orders = (await conn.execute(sa.text(
                "SELECT order_number FROM orders WHERE channel = :c"), {"c": name})).scalars().all()
        by_delivery = Counter(r.delivery_id for r in kept if r.delivery_id is not None)
        assert all(count == 1 for count in by_delivery.values()), by_delivery
        assert {r.delivery_id: r.deliveries for r in kept if r.delivery_id} == dict(posts)
        assert {r.delivery_id: r.state for r in kept if r.delivery_id} == first_state
        assert sum(1 for r in kept if r.reason == "bad_signature") == bad_signatures
        assert sorted(orders) == sorted(numbers)
        assert all(r.order_id is not None for r in kept if r.state == "accepted")
    finally:
        await dispose(engine)


@pytest.mark.timeout(300)
@hypothesis_settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "15")),
                     deadline=None, derandomize="HYPOTHESIS_EXAMPLES" not in os.environ,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_every_received_payload_ends_accepted_rejected_or_dead_exactly_once(
        base_settings, actions):
    asyncio.run(_scenario(base_settings, actions))
