"""WooCommerce's order webhook (`order.created`, REST API v3 order JSON), signed with
`X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw body with the webhook's secret)
and identified per delivery by `X-WC-Webhook-Delivery-ID`. When a webhook is created,
WooCommerce first sends a ping (`webhook_id=<id>`, form-encoded): answered 200."""

from __future__ import annotations

from typing import Any

from backorders.intake.mapping import (
    Context,
    MappingError,
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

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"


def _customer_id(order: dict[str, Any], ctx: Context) -> str | None:
    """A registered customer's id; a guest (customer_id 0) is known by billing email."""
    registered = order.get("customer_id")
    if isinstance(registered, int) and not isinstance(registered, bool) and registered > 0:
        return str(registered)
    billing = order.get("billing") or {}
    return billing.get("email") or None


ORDER = {
    "order_number": ("number|id", required(text)),
    "placed_at": ("date_created_gmt|date_created", optional(timestamp)),
    "customer.id": _customer_id,
    "customer.email": ("billing.email", optional(email)),
    "customer.phone": ("billing.phone|shipping.phone", phone),
}
LINE = {
    "sku": ("sku", required(text)),
    "quantity": ("quantity", required(whole)),
    "unit_price": ("price", required(money)),
}


def is_ping(body: bytes) -> bool:
    return body.startswith(b"webhook_id=")


def to_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    order = read(payload, ORDER, ctx)
    if "customer" not in order or "id" not in order["customer"]:
        raise MappingError("customer_id", "a registered customer id or a billing email is required")
    order["lines"] = lines(payload, "line_items", LINE, ctx)
    return order
