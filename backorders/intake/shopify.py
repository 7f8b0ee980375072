"""Shopify's `orders/create` webhook (Admin REST order JSON), signed with
`X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the app's secret) and
identified per delivery by `X-Shopify-Webhook-Id`."""

from __future__ import annotations

from typing import Any

from backorders.intake.mapping import (
    Context,
    email,
    json_object,
    lines,
    money,
    optional,
    phone,
    read,
    required,
    text,
    timestamp,
    whole,
)

decode = json_object

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
DELIVERY_HEADER = "X-Shopify-Webhook-Id"


def _tier(order: dict[str, Any], ctx: Context) -> str | None:
    """A customer tag `tier:gold` sets the tier; otherwise standard."""
    tags = (order.get("customer") or {}).get("tags") or ""
    for tag in str(tags).split(","):
        key, _, value = tag.strip().partition(":")
        if key.lower() == "tier" and value:
            return value.strip().lower()
    return None


ORDER = {
    "order_number": ("order_number", required(text)),
    "placed_at": ("created_at", optional(timestamp)),
    "customer.id": ("customer.id|email", required(text)),
    "customer.email": ("customer.email|email|contact_email", optional(email)),
    "customer.phone": ("customer.phone|phone|shipping_address.phone", phone),
    "customer.tier": _tier,
}
LINE = {
    "sku": ("sku", required(text)),
    "quantity": ("quantity", required(whole)),
    "unit_price": ("price", required(money)),
}


def to_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    order = read(payload, ORDER, ctx)
    order["lines"] = lines(payload, "line_items", LINE, ctx)
    return order
