"""A marketplace order in Amazon SP-API shape: the Orders API's order (`AmazonOrderId`,
`PurchaseDate`, `BuyerInfo`) with its `OrderItems` (`SellerSKU`, `QuantityOrdered`,
`ItemPrice` for the whole quantity). The marketplace connector that polls the API posts
each order signed with `X-Backorders-Signature` (base64 HMAC-SHA256 of the raw body with
the channel's secret); the order id is its delivery id."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from backorders.intake.mapping import (
    Context,
    MappingError,
    email,
    json_object,
    lines,
    lookup,
    money,
    optional,
    read,
    required,
    text,
    timestamp,
    whole,
)

decode = json_object

SIGNATURE_HEADER = "X-Backorders-Signature"
DELIVERY_HEADER = "X-Backorders-Delivery-Id"


def _unit_price(item: dict[str, Any], ctx: Context) -> str:
    """SP-API's ItemPrice is for the item's whole quantity."""
    _, amount = lookup(item, "ItemPrice.Amount")
    _, quantity = lookup(item, "QuantityOrdered")
    total = Decimal(required(money)(amount, ctx))
    count = required(whole)(quantity, ctx)
    if count <= 0:
        raise MappingError("QuantityOrdered", "must be at least 1")
    return str((total / count).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))


ORDER = {
    "order_number": ("AmazonOrderId", required(text)),
    "placed_at": ("PurchaseDate", optional(timestamp)),
    "customer.id": ("BuyerInfo.BuyerEmail|AmazonOrderId", required(text)),
    "customer.email": ("BuyerInfo.BuyerEmail", optional(email)),
}
LINE = {
    "sku": ("SellerSKU", required(text)),
    "quantity": ("QuantityOrdered", required(whole)),
    "unit_price": _unit_price,
}


def to_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    order = read(payload, ORDER, ctx)
    order["lines"] = lines(payload, "OrderItems", LINE, ctx)
    return order
