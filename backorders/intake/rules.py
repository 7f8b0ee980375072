"""Validation by channel and account: the channel's rules, overlaid with the overrides of
the customer's tier and then of the customer itself (a B2B account may exceed the
channel's line cap, say). Pure: the caller brings the products' list prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from backorders.schemas import AccountRules, ChannelRules, OrderIn


@dataclass(frozen=True)
class Broken:
    """A rule an order breaks: its code, what to tell the sender, and the field."""

    rule: str
    message: str
    field: str


def effective(rules: ChannelRules, accounts: Mapping[str, AccountRules], customer_id: str,
              tier: str) -> ChannelRules:
    merged = rules.model_dump()
    for key in (f"tier:{tier}", customer_id):
        override = accounts.get(key)
        if override is not None:
            merged.update(override.model_dump(exclude_none=True))
    return ChannelRules.model_validate(merged)


def map_skus(order: dict, rules: ChannelRules) -> dict:
    """The channel's own SKUs replaced by ours, before anything reads them."""
    for line in order.get("lines", []):
        if isinstance(line, dict) and line.get("sku") in rules.sku_map:
            line["sku"] = rules.sku_map[line["sku"]]
    return order


def check(order: OrderIn, rules: ChannelRules,
          list_prices: Mapping[str, Decimal | None]) -> Broken | None:
    """The first rule the order breaks, naming the field it breaks it with; None when
    it keeps them all."""
    customer = order.customer
    if rules.require_email and not customer.email:
        return Broken("rule_require_email", "this channel requires the customer's email",
                      "customer.email")
    if rules.require_phone and not customer.phone:
        return Broken("rule_require_phone", "this channel requires the customer's phone",
                      "customer.phone")
    if rules.require_contact and not (customer.email or customer.phone):
        return Broken("rule_require_contact",
                      "this channel requires the customer's email or phone", "customer")
    if rules.max_lines is not None and len(order.lines) > rules.max_lines:
        return Broken("rule_max_lines", f"this channel takes at most {rules.max_lines} lines "
                      f"per order for this account; this one has {len(order.lines)}",
                      "lines")
    if rules.price_tolerance is not None:
        for i, line in enumerate(order.lines):
            listed = list_prices.get(line.sku)
            if listed is None or listed == 0:
                continue
            off = abs(line.unit_price - listed) / listed
            if off > rules.price_tolerance:
                return Broken(
                    "rule_price_tolerance",
                    f"{line.sku} at {line.unit_price} is {off:.1%} from its list price "
                    f"{listed}; this channel allows {rules.price_tolerance:.1%}",
                    f"lines[{i}].unit_price")
    return None
