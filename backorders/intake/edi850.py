"""X12 850 purchase orders from EDI buyers, tokenised with pyx12's reader (any envelope,
any delimiters), read by our own map of the 850 segments we take, and answered with the
997 functional acknowledgement; the 855 acknowledgement then says, per line, what we
will do: accept it (IA), backorder it (IB), or ship part and backorder the balance (BP),
with the backordered quantity and, once known, the expected date.

The buyer's translator posts the interchange signed with `X-Backorders-Signature`
(base64 HMAC-SHA256 of the raw body with the channel's secret); the interchange's
sender id and control number (ISA06, ISA13) identify the delivery."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyx12.errors
from pyx12.x12file import X12Reader

from backorders.intake.mapping import Context, MappingError, money, phone, whole

SIGNATURE_HEADER = "X-Backorders-Signature"
DELIVERY_HEADER = "X-Backorders-Delivery-Id"
CONTENT_TYPE = "application/edi-x12"
OUR_ID = "BACKORDERS"

PRODUCT_QUALIFIERS = ("VP", "VN", "SK", "BP", "UP", "IN")
"""Which PO1 product id we read as the SKU, in order of preference: the vendor's (ours)
part number first; a buyer's own part number then goes through the channel's SKU map."""


@dataclass
class Interchange:
    """What the acknowledgements echo: who sent it, and its control numbers."""

    sender_qualifier: str = "ZZ"
    sender: str = ""
    receiver_qualifier: str = "ZZ"
    receiver: str = OUR_ID
    isa_control: str = ""
    version: str = "00401"
    gs_control: str = ""
    gs_version: str = "004010"
    st_control: str = ""
    po_number: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class Purchase:
    interchange: Interchange
    segments: list[tuple[str, list[str]]]


def _segments(body: bytes) -> tuple[list[tuple[str, list[str]]], list[str]]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise MappingError("body", "an X12 interchange is ASCII text") from None
    if not text.lstrip().startswith("ISA"):
        raise MappingError("ISA", "an X12 interchange starts with an ISA segment")
    try:
        reader = X12Reader(io.StringIO(text))
        out = []
        for seg in reader:
            values = [seg.get_value(f"{seg.get_seg_id()}{i:02d}") or ""
                      for i in range(1, len(seg) + 1)]
            out.append((seg.get_seg_id(), values))
        errors = [f"{e[0]} {e[2]}" if isinstance(e, tuple) and len(e) > 2 else str(e)
                  for e in reader.pop_errors()]
    except pyx12.errors.X12Error as exc:
        raise MappingError("ISA", f"not a readable X12 interchange: {exc}") from None
    return out, errors


def decode(body: bytes) -> Purchase:
    segments, errors = _segments(body)
    env = Interchange(errors=errors)
    for seg_id, v in segments:
        if seg_id == "ISA" and len(v) >= 13:
            env.sender_qualifier, env.sender = v[4].strip(), v[5].strip()
            env.receiver_qualifier, env.receiver = v[6].strip(), v[7].strip()
            env.version, env.isa_control = v[11].strip(), v[12].strip()
        elif seg_id == "GS" and len(v) >= 8:
            if v[0] != "PO":
                raise MappingError("GS01", f"functional group {v[0]!r} is not PO (850)")
            env.gs_control, env.gs_version = v[5], v[7]
        elif seg_id == "ST":
            if v[0] != "850":
                raise MappingError("ST01", f"transaction set {v[0]!r} is not an 850")
            env.st_control = v[1] if len(v) > 1 else ""
        elif seg_id == "BEG" and len(v) >= 3:
            env.po_number = v[2]
    return Purchase(env, segments)


def delivery_of(body: bytes) -> str | None:
    """The interchange's identity, when the translator sends no delivery header."""
    try:
        env = decode(body).interchange
    except MappingError:
        return None
    return f"{env.sender}:{env.isa_control}" if env.sender and env.isa_control else None


def _value(v: list[str], i: int) -> str:
    return v[i - 1].strip() if len(v) >= i else ""


def to_order(purchase: Purchase, ctx: Context) -> dict[str, Any]:
    env = purchase.interchange
    if env.errors:
        raise MappingError("ISA", "; ".join(env.errors))
    order: dict[str, Any] = {"customer": {}}
    lines = []
    po1_seen = 0
    for seg_id, v in purchase.segments:
        if seg_id == "BEG":
            number = _value(v, 3)
            if not number:
                raise MappingError("BEG03", "the purchase order number is required")
            order["order_number"] = number
            when = _value(v, 5)
            if when:
                try:
                    order["placed_at"] = datetime.strptime(when, "%Y%m%d").replace(
                        tzinfo=UTC).isoformat()
                except ValueError:
                    raise MappingError("BEG05", "must be a date as CCYYMMDD") from None
        elif seg_id == "N1" and _value(v, 1) in ("BY", "BT", "ST") \
                and "id" not in order["customer"]:
            buyer = _value(v, 4) or _value(v, 2)
            if buyer:
                order["customer"]["id"] = buyer
        elif seg_id == "PER":
            for i in range(3, len(v), 2):
                kind, value = _value(v, i), _value(v, i + 1)
                if kind == "EM" and "@" in value:
                    order["customer"].setdefault("email", value)
                elif kind == "TE" and value:
                    number = phone(value, ctx)
                    if number:
                        order["customer"].setdefault("phone", number)
        elif seg_id == "PO1":
            po1_seen += 1
            where = f"PO1[{po1_seen}]"
            ids = {_value(v, i): _value(v, i + 1) for i in range(6, len(v), 2)}
            sku = next((ids[q] for q in PRODUCT_QUALIFIERS if ids.get(q)), None)
            if sku is None:
                raise MappingError(f"{where}.PO107", "no product id (VP, BP, UP...) on the line")
            try:
                quantity = whole(_value(v, 2), ctx)
            except MappingError:
                raise MappingError(f"{where}.PO102", "the quantity must be a whole number") \
                    from None
            try:
                price = money(_value(v, 4) or "0", ctx)
            except MappingError:
                raise MappingError(f"{where}.PO104", "the unit price must be an amount") from None
            lines.append({"sku": sku, "quantity": quantity, "unit_price": price})
    if "order_number" not in order:
        raise MappingError("BEG", "the 850 has no BEG segment")
    if "id" not in order["customer"]:
        order["customer"]["id"] = env.sender or "edi"
    if not lines:
        raise MappingError("PO1", "the 850 has no PO1 line")
    order["lines"] = lines
    return order


# --- acknowledgements ------------------------------------------------------------------------


def _envelope(env: Interchange, control: int, functional: str, at: datetime) -> tuple[str, str]:
    isa = "*".join([
        "ISA", "00", " " * 10, "00", " " * 10,
        env.receiver_qualifier or "ZZ", (env.receiver or OUR_ID).ljust(15)[:15],
        env.sender_qualifier or "ZZ", env.sender.ljust(15)[:15],
        at.strftime("%y%m%d"), at.strftime("%H%M"), "U", env.version or "00401",
        f"{control:09d}", "0", "P", ">"]) + "~"
    gs = "*".join(["GS", functional, env.receiver or OUR_ID, env.sender,
                   at.strftime("%Y%m%d"), at.strftime("%H%M"), str(control), "X",
                   env.gs_version or "004010"]) + "~"
    return isa, gs


def _wrap(env: Interchange, control: int, functional: str, body: list[str],
          at: datetime) -> str:
    isa, gs = _envelope(env, control, functional, at)
    st = f"ST*{'997' if functional == 'FA' else '855'}*0001~"
    se = f"SE*{len(body) + 2}*0001~"
    return "".join([isa, gs, st, *body, se, f"GE*1*{control}~", f"IEA*1*{control:09d}~"])


def ack_997(env: Interchange, *, accepted: bool, control: int, error: str | None = None,
            at: datetime | None = None) -> str:
    """The functional acknowledgement: the 850 was read (A) or could not be (R)."""
    at = at or datetime.now(UTC)
    body = [f"AK1*PO*{env.gs_control or '0'}~", f"AK2*850*{env.st_control or '0001'}~"]
    if accepted:
        body += ["AK5*A~", "AK9*A*1*1*1~"]
    else:
        body += ["AK5*R*5~", "AK9*R*1*1*0~"]
    return _wrap(env, control, "FA", body, at)


@dataclass(frozen=True)
class LineAck:
    quantity: int
    unit_price: str
    sku: str
    from_stock: int
    backordered: int
    expected: date | None


def ack_855(env: Interchange, po_number: str, lines: list[LineAck], *, control: int,
            at: datetime | None = None) -> str:
    """The purchase order acknowledgement: per line IA (all from stock), IB (all
    backordered) or BP (part ships, the balance is backordered), with the backordered
    quantity and, once known, the expected date (ACK04 068: current schedule ship)."""
    at = at or datetime.now(UTC)
    changed = any(ln.backordered for ln in lines)
    body = [f"BAK*00*{'AC' if changed else 'AD'}*{po_number}*{at.strftime('%Y%m%d')}~"]
    for i, ln in enumerate(lines, start=1):
        body.append(f"PO1*{i}*{ln.quantity}*EA*{ln.unit_price}**VP*{ln.sku}~")
        if not ln.backordered:
            body.append(f"ACK*IA*{ln.quantity}*EA~")
            continue
        code = "IB" if not ln.from_stock else "BP"
        dated = f"*068*{ln.expected.strftime('%Y%m%d')}" if ln.expected else ""
        body.append(f"ACK*{code}*{ln.backordered}*EA{dated}~")
    body.append(f"CTT*{len(lines)}~")
    return _wrap(env, control, "PR", body, at)
