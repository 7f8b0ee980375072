"""What a notification says: the facts the rest of the code fills in, and `render`, which
turns an event, a channel and those facts into a `Rendered` message.

The wording lives in Jinja2 templates under `templates/`, one file per event and format:

    customer/<event>.subject.j2   one line: the email subject, the push title, the stored subject
    customer/<event>.txt.j2       plain-text email body, also what the log channel keeps
    customer/<event>.html.j2      HTML email body (autoescaped)
    customer/<event>.short.j2     SMS and push body (SMS adds the opt-out keyword)
    staff/<event>.{subject,txt,html}.j2

A template problem must fail loudly rather than send a broken message: an undefined
variable raises (`StrictUndefined`), printing `None` raises, and a customer message
cannot be rendered without its opt-out. `check_all()` renders everything with sample
facts so a worker can refuse to start with a broken template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateRuntimeError,
    select_autoescape,
)

from backorders.notify.message import Channel, Event, Rendered

# --- The facts ------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFacts:
    id: str
    name: str | None = None
    tier: str | None = None
    """The customer's tier (platinum, gold, ...), shown to staff; never to the customer."""


@dataclass(frozen=True)
class LineFacts:
    """One order line as the customer or staff should hear about it."""

    order_number: str
    sku: str
    product_name: str | None
    quantity: int
    """Units ordered on the line."""
    backordered_quantity: int
    """Units still waiting for stock."""
    shipped_quantity: int
    """Units dispatched so far."""
    status: str
    """A `LineStatus` value."""
    queue_position: int | None
    units_ahead: int | None
    expected_date: date | None
    """The date we now expect; None when nobody knows yet (the message says so)."""
    tracking_number: str | None = None
    reason: str | None = None
    """Why it was delayed, cancelled or escalated, in words fit for the reader."""
    days_waiting: int = 0
    promised_date: date | None = None
    """The date we had given the customer before (promise missed, delayed)."""
    allocated_quantity: int = 0
    """Units reserved for the line and on their way through the warehouse."""
    cancelled_quantity: int = 0


@dataclass(frozen=True)
class OptOut:
    url: str
    """Unsubscribe link for email."""
    keyword: str
    """SMS reply keyword, e.g. STOP."""


@dataclass(frozen=True)
class StockFacts:
    sku: str
    product_name: str | None
    on_hand: int
    available: int
    waiting_units: int
    """Units on backorder for the SKU."""
    waiting_lines: int
    threshold: int | None
    """The low-stock threshold, when one is set."""
    incoming_units: int
    """Units expected from open purchase orders."""


@dataclass(frozen=True)
class ReceiptFacts:
    receipt_id: str
    sku: str
    quantity: int
    """Units received."""
    allocated_quantity: int
    """Of those, units handed to waiting lines."""
    lines_served: int
    to_stock_quantity: int
    """Of those, units left on the shelf as available stock."""


# --- Which events go where ------------------------------------------------------------

STAFF_EVENTS: frozenset[Event] = frozenset(
    {
        Event.STAFF_PROMISE_MISSED,
        Event.ESCALATION,
        Event.LOW_STOCK,
        Event.SUPPLY_SHORTFALL,
        Event.RECEIPT_PROCESSED,
    }
)
CUSTOMER_CHANNELS: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.LOG)
STAFF_CHANNELS: tuple[Channel, ...] = (Channel.EMAIL, Channel.LOG)

# The facts each event cannot be written without (customer events also need `opt_out`).
_NEEDS: dict[Event, tuple[str, ...]] = {
    Event.BACKORDERED: ("customer", "line"),
    Event.ALLOCATED: ("customer", "line"),
    Event.DISPATCHED: ("customer", "line"),
    Event.DELAYED: ("customer", "line"),
    Event.CANCELLED: ("customer", "line"),
    Event.STATUS_UPDATE: ("customer", "line"),
    Event.PROMISE_MISSED: ("customer", "line"),
    Event.DIGEST: ("customer", "lines"),
    Event.STAFF_PROMISE_MISSED: ("customer", "line"),
    Event.ESCALATION: ("customer", "line"),
    Event.LOW_STOCK: ("stock",),
    Event.SUPPLY_SHORTFALL: ("stock",),
    Event.RECEIPT_PROCESSED: ("receipt",),
}


def is_staff(event: Event) -> bool:
    return event in STAFF_EVENTS


def channels_for(event: Event) -> tuple[Channel, ...]:
    """The channels `event` can be rendered for."""
    return STAFF_CHANNELS if is_staff(event) else CUSTOMER_CHANNELS


# --- Filters --------------------------------------------------------------------------

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

_STATUS_WORDS = {
    "backordered": "waiting for stock",
    "allocated": "reserved for you, shipping soon",
    "picking": "being picked in the warehouse",
    "packed": "packed",
    "awaiting_shipment": "packed and waiting for the carrier",
    "dispatched": "dispatched",
    "cancelled": "cancelled",
}

_SHORT_NAME = 40


def longdate(value: date) -> str:
    """Tuesday 3 March 2026, the same in every locale. None is a template bug: it raises."""
    if not isinstance(value, date):
        raise TemplateRuntimeError(f"longdate needs a date, got {value!r}")
    return f"{_DAYS[value.weekday()]} {value.day} {_MONTHS[value.month - 1]} {value.year}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`3|plural("unit")` -> "3 units"; `1|plural("unit")` -> "1 unit"."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {word}"


def status_words(status: str) -> str:
    return _STATUS_WORDS.get(str(status), str(status).replace("_", " "))


def sentence(text: str) -> str:
    """"held at the port" -> "Held at the port." (leaves existing end punctuation alone)."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def item(line: LineFacts | StockFacts, short: bool = False) -> str:
    """The product as the reader knows it: "Blue kettle (SKU K-1)", or "SKU K-1" when we
    have no name; `short` drops the SKU and trims long names for SMS and push."""
    name = line.product_name
    if not name:
        return f"SKU {line.sku}"
    if short:
        return name if len(name) <= _SHORT_NAME else name[: _SHORT_NAME - 3].rstrip() + "..."
    return f"{name} (SKU {line.sku})"


def _refuse_none(value: Any) -> Any:
    if value is None:
        raise TemplateRuntimeError("a template printed None; say what is missing instead")
    return value


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("backorders.notify", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_refuse_none,
        auto_reload=False,
    )
    env.filters.update(
        longdate=longdate, plural=plural, status_words=status_words, item=item, sentence=sentence
    )
    return env


ENV = make_environment()


# --- Rendering ------------------------------------------------------------------------

_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def _tidy(text: str) -> str:
    """Collapse the blank lines optional paragraphs leave behind."""
    return _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("\n", text)).strip()


def _one_line(text: str) -> str:
    """Subjects, SMS and push bodies are one line: no stray newlines (nor header injection)."""
    return " ".join(text.split())


def render(
    event: Event,
    channel: Channel,
    *,
    customer: CustomerFacts | None = None,
    line: LineFacts | None = None,
    lines: list[LineFacts] | None = None,
    stock: StockFacts | None = None,
    receipt: ReceiptFacts | None = None,
    opt_out: OptOut | None = None,
) -> Rendered:
    """The message for `event` on `channel`. Raises ValueError when the event does not go to
    that channel or a fact it needs is missing (a customer message always needs `opt_out`),
    and a jinja2 TemplateError when a template is broken."""
    event, channel = Event(event), Channel(channel)
    if channel not in channels_for(event):
        raise ValueError(f"{event} is not sent by {channel}")
    facts: dict[str, Any] = {
        "customer": customer,
        "line": line,
        "lines": lines,
        "stock": stock,
        "receipt": receipt,
        "opt_out": opt_out,
    }
    audience = "staff" if is_staff(event) else "customer"
    needs = _NEEDS[event] if is_staff(event) else (*_NEEDS[event], "opt_out")
    missing = [name for name in needs if not facts[name]]
    if missing:
        raise ValueError(f"{event} needs {', '.join(missing)}")

    context = {**facts, "event": event, "channel": channel}
    subject = _one_line(ENV.get_template(f"{audience}/{event}.subject.j2").render(context))
    context["subject"] = subject
    if channel in (Channel.SMS, Channel.PUSH):
        body = ENV.get_template(f"{audience}/{event}.short.j2").render(context)
        return Rendered(subject=subject, text=_one_line(body))
    text = _tidy(ENV.get_template(f"{audience}/{event}.txt.j2").render(context))
    html = None
    if channel is Channel.EMAIL:
        html = _tidy(ENV.get_template(f"{audience}/{event}.html.j2").render(context))
    return Rendered(subject=subject, text=text, html=html)


# --- Sample facts and the start-up check ----------------------------------------------

SAMPLE_OPT_OUT = OptOut(url="https://example.com/unsubscribe?c=C-1&t=abc", keyword="STOP")


def sample_facts(event: Event, *, sparse: bool = False) -> dict[str, Any]:
    """Keyword arguments for `render(event, ...)`. `sparse` leaves out everything optional
    (no name, no dates, no queue position, no tracking) so both sides of every `if` run."""
    customer = CustomerFacts(id="C-1", name=None if sparse else "Ada", tier=None if sparse else "gold")
    line = LineFacts(
        order_number="1001",
        sku="KET-BLUE",
        product_name=None if sparse else "Blue kettle",
        quantity=5,
        backordered_quantity=3,
        shipped_quantity=2,
        status="backordered",
        queue_position=None if sparse else 4,
        units_ahead=None if sparse else 9,
        expected_date=None if sparse else date(2026, 3, 3),
        tracking_number=None if sparse else "1Z999AA10123456784",
        reason=None if sparse else "our supplier's shipment was held at the port",
        days_waiting=0 if sparse else 12,
        promised_date=None if sparse else date(2026, 2, 24),
        allocated_quantity=3,
        cancelled_quantity=1,
    )
    second = LineFacts(
        order_number="1002",
        sku="MUG-RED",
        product_name=None if sparse else "Red mug",
        quantity=2,
        backordered_quantity=0,
        shipped_quantity=2,
        status="dispatched",
        queue_position=None,
        units_ahead=None,
        expected_date=None,
    )
    stock = StockFacts(
        sku="KET-BLUE",
        product_name=None if sparse else "Blue kettle",
        on_hand=4,
        available=1,
        waiting_units=30,
        waiting_lines=11,
        threshold=None if sparse else 5,
        incoming_units=0 if sparse else 12,
    )
    receipt = ReceiptFacts(
        receipt_id="GR-77", sku="KET-BLUE", quantity=20, allocated_quantity=14, lines_served=6,
        to_stock_quantity=6,
    )
    facts: dict[str, Any] = {
        "customer": customer,
        "line": line,
        "lines": [line, second],
        "stock": stock,
        "receipt": receipt,
    }
    wanted = {name: facts[name] for name in _NEEDS[event]}
    if not is_staff(event):
        wanted["opt_out"] = SAMPLE_OPT_OUT
    return wanted


_LEFTOVER = ("{{", "}}", "{%", "%}", "{#", "None", "Undefined")


def check_all() -> dict[tuple[Event, Channel], Rendered]:
    """Render every event on every channel it goes to, with full and with sparse sample
    facts, and check the results: no leftover template syntax, no "None", the opt-out on
    every customer email and SMS. Raises on the first problem; returns the full renders."""
    results: dict[tuple[Event, Channel], Rendered] = {}
    for event in Event:
        for channel in channels_for(event):
            for sparse in (True, False):
                rendered = render(event, channel, **sample_facts(event, sparse=sparse))
                _check(event, channel, rendered)
            results[event, channel] = rendered
    return results


def _check(event: Event, channel: Channel, rendered: Rendered) -> None:
    def fail(why: str) -> None:
        raise RuntimeError(f"template for {event} on {channel}: {why}")

    parts = [rendered.subject, rendered.text, rendered.html or ""]
    if not rendered.subject or not rendered.text:
        fail("empty subject or body")
    for part in parts:
        for token in _LEFTOVER:
            if token in part:
                fail(f"{token!r} left in the output")
    if (channel is Channel.EMAIL) != (rendered.html is not None):
        fail("HTML only for email")
    if is_staff(event):
        return
    if channel in (Channel.EMAIL, Channel.LOG) and SAMPLE_OPT_OUT.url not in rendered.text:
        fail("no unsubscribe link in the text")
    if channel is Channel.EMAIL and rendered.html is not None:
        escaped = SAMPLE_OPT_OUT.url.replace("&", "&amp;")
        if f'href="{escaped}"' not in rendered.html:
            fail("no unsubscribe link in the HTML")
    if channel is Channel.SMS and f"Reply {SAMPLE_OPT_OUT.keyword}" not in rendered.text:
        fail("no opt-out keyword in the SMS")
