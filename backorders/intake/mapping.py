"""What the per-platform mappings share: reading a field by its path in the platform's
payload, converting it, and naming the platform's own field when it is missing or wrong,
so a rejected payload tells the sender exactly which of *its* fields to fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

Convert = Callable[[Any, "Context"], Any]
Field = tuple[str, Convert] | Callable[[Mapping[str, Any], "Context"], Any]
"""(path in the payload, converter), or a function of the whole item for a value the
platform spreads over several fields. A path may offer alternatives: "customer.email|email"."""

MISSING = object()


class MappingError(Exception):
    """The payload cannot be read as an order: the sender's fault, named by its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Context:
    channel: str
    default_region: str = "US"
    """Phone numbers written without a country code are read as this region's."""


def lookup(data: Mapping[str, Any], path: str) -> tuple[str, Any]:
    """The first of the path's alternatives that is present and not empty."""
    for option in path.split("|"):
        value: Any = data
        for part in option.split("."):
            value = value.get(part, MISSING) if isinstance(value, Mapping) else MISSING
            if value is MISSING:
                break
        if value is not MISSING and value not in (None, ""):
            return option, value
    return path.split("|")[0], MISSING


def read(data: Mapping[str, Any], fields: Mapping[str, Field], ctx: Context,
         prefix: str = "") -> dict[str, Any]:
    """Our model's fields (dotted names nest) from `data` by the table `fields`."""
    out: dict[str, Any] = {}
    for ours, spec in fields.items():
        if callable(spec):
            try:
                value = spec(data, ctx)
            except MappingError as exc:  # named relative to `data`, like a path's
                raise MappingError(prefix + exc.field, exc.message) from None
        else:
            path, convert = spec
            found, raw = lookup(data, path)
            try:
                value = convert(raw, ctx)
            except MappingError as exc:
                raise MappingError(prefix + found, exc.message) from None
        if value is None:
            continue
        target = out
        *parents, leaf = ours.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def lines(data: Mapping[str, Any], path: str, fields: Mapping[str, Field],
          ctx: Context) -> list[dict[str, Any]]:
    """Our order lines from the payload's list at `path`, each read by `fields`."""
    return [read(item, fields, ctx, prefix) for prefix, item in items(data, path)]


def items(data: Mapping[str, Any], path: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The payload's list at `path`, each with its own field prefix for errors."""
    _, value = lookup(data, path)
    if not isinstance(value, list) or not value:
        raise MappingError(path, "must be a non-empty list of line items")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise MappingError(f"{path}[{i}]", "must be an object")
        out.append((f"{path}[{i}].", item))
    return out


def json_object(body: bytes) -> dict[str, Any]:
    """The body of a JSON webhook, which must be an object."""
    import json

    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MappingError("body", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise MappingError("body", "the body is not a JSON object")
    return payload


# --- converters ---------------------------------------------------------------------------


def required(convert: Convert) -> Convert:
    def check(value: Any, ctx: Context) -> Any:
        if value is MISSING:
            raise MappingError("", "is required")
        return convert(value, ctx)
    return check


def optional(convert: Convert) -> Convert:
    def check(value: Any, ctx: Context) -> Any:
        return None if value is MISSING else convert(value, ctx)
    return check


def text(value: Any, ctx: Context) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MappingError("", "must be text or a whole number")
    return str(value).strip()


def whole(value: Any, ctx: Context) -> int:
    if isinstance(value, bool):
        raise MappingError("", "must be a whole number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MappingError("", "must be a whole number") from None
    if number != number.to_integral_value():
        raise MappingError("", "must be a whole number")
    return int(number)


def money(value: Any, ctx: Context) -> str:
    if isinstance(value, bool):
        raise MappingError("", "must be an amount")
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        raise MappingError("", "must be an amount") from None


def timestamp(value: Any, ctx: Context) -> str:
    """ISO 8601; a time without an offset (WooCommerce's `*_gmt`) is UTC."""
    if not isinstance(value, str):
        raise MappingError("", "must be an ISO 8601 time")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError("", "must be an ISO 8601 time") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def phone(value: Any, ctx: Context) -> str | None:
    """E.164, read with the channel's default region; an unreadable number is dropped
    (the order still stands, messages go by email) rather than refusing the order."""
    if value is MISSING or not isinstance(value, str):
        return None
    try:
        number = phonenumbers.parse(value, ctx.default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(value: Any, ctx: Context) -> str | None:
    return value.strip() if isinstance(value, str) and "@" in value else None
