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
cannot be rendered without its opt-out. `check_all()` renders every event on every
channel with facts made from the fields' types; the worker runs it as it starts, so it
refuses to start with a broken template.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar, get_args, get_type_hints

from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateError,
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
    likely_date: date | None = None
    """The expected date shifted by the supplier's usual delay (`domain.delays`)."""
    latest_date: date | None = None
    """The date the units should arrive by, from the supplier's delays."""

    @property
    def likely(self) -> date | None:
        """The date to give the customer: the likely date, else the expected date; None
        when nobody knows yet."""
        if self.expected_date is None:
            return None
        return self.likely_date or self.expected_date

    @property
    def latest(self) -> date | None:
        """The latest date, when it is later than `likely` (else nothing more to say)."""
        likely = self.likely
        if likely is None or self.latest_date is None or self.latest_date <= likely:
            return None
        return self.latest_date


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


@dataclass(frozen=True)
class IntakeFacts:
    intake_id: int
    channel: str
    reason: str
    message: str
    order_number: str | None
    order_value: str | None
    """As text: the store keeps facts as JSON."""


@dataclass(frozen=True)
class ShortageFacts:
    """A SKU predicted to stock out (F21), with what to order."""

    sku: str
    stockout_date: date
    lead_time_days: int
    available: int
    incoming_units: int
    predicted_backorder_units: int
    suggested_quantity: int
    reorder_point: int
    safety_stock: int
    product_name: str | None = None
    order_by: date | None = None
    supplier_id: str | None = None
    substitutes: str | None = None
    """In stock instead, comma-separated."""


# --- Which events go where ------------------------------------------------------------

STAFF_EVENTS: frozenset[Event] = frozenset(
    {
        Event.STAFF_PROMISE_MISSED,
        Event.ESCALATION,
        Event.LOW_STOCK,
        Event.SUPPLY_SHORTFALL,
        Event.RECEIPT_PROCESSED,
        Event.INTAKE_DEAD,
        Event.IMPENDING_SHORTAGE,
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
    Event.INTAKE_DEAD: ("intake",),
    Event.IMPENDING_SHORTAGE: ("shortage",),
}


def is_staff(event: Event) -> bool:
    return event in STAFF_EVENTS


def channels_for(event: Event) -> tuple[Channel, ...]:
    """The channels `event` can be rendered for."""
    return STAFF_CHANNELS if is_staff(event) else CUSTOMER_CHANNELS


def facts_needed(event: Event) -> tuple[str, ...]:
    """The facts `render(event, ...)` cannot do without, by keyword."""
    return _NEEDS[event] if is_staff(event) else (*_NEEDS[event], "opt_out")


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


def item(line: LineFacts | StockFacts | ShortageFacts, short: bool = False) -> str:
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
    intake: IntakeFacts | None = None,
    shortage: ShortageFacts | None = None,
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
        "intake": intake,
        "shortage": shortage,
        "opt_out": opt_out,
    }
    audience = "staff" if is_staff(event) else "customer"
    missing = [name for name in facts_needed(event) if not facts[name]]
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


# --- The start-up check --------------------------------------------------------------

_PROBE_OPT_OUT = OptOut(url="https://example.com/unsubscribe?c=probe&t=probe", keyword="STOP")
_PROBE_VALUES: dict[type, Any] = {int: 2, date: date(2026, 3, 3)}
"""A value for each type of fact but text, which gets the field's own name."""
_Facts = TypeVar("_Facts")


def _probe(cls: type[_Facts], *, sparse: bool) -> _Facts:
    """`cls` (a facts dataclass) with every field filled with a value of its type; with
    `sparse`, every field that may be missing is left at None or its default instead."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kinds = get_args(hints[f.name]) or (hints[f.name],)
        if sparse and (type(None) in kinds or f.default is not dataclasses.MISSING):
            values[f.name] = None if f.default is dataclasses.MISSING else f.default
        else:
            kind = next(k for k in kinds if k is not type(None))
            if kind is not str and kind not in _PROBE_VALUES:
                raise TypeError(f"no probe value for {cls.__name__}.{f.name} ({kind})")
            values[f.name] = f.name if kind is str else _PROBE_VALUES[kind]
    return cls(**values)


def _probe_facts(event: Event, *, sparse: bool) -> dict[str, Any]:
    """Keyword arguments for `render(event, ...)`, made by `_probe`."""
    line = _probe(LineFacts, sparse=sparse)
    facts: dict[str, Any] = {
        "customer": _probe(CustomerFacts, sparse=sparse),
        "line": line,
        "lines": [line],
        "stock": _probe(StockFacts, sparse=sparse),
        "receipt": _probe(ReceiptFacts, sparse=sparse),
        "intake": _probe(IntakeFacts, sparse=sparse),
        "shortage": _probe(ShortageFacts, sparse=sparse),
        "opt_out": _PROBE_OPT_OUT,
    }
    return {name: facts[name] for name in facts_needed(event)}


_LEFTOVER = ("{{", "}}", "{%", "%}", "{#", "None", "Undefined")


def check_all() -> dict[tuple[Event, Channel], Rendered]:
    """Render every event on every channel it goes to, with every fact filled in and with
    every optional fact left out, and check the results: no leftover template syntax, no
    "None", the opt-out on every customer email and SMS. Raises RuntimeError naming the
    template on the first problem (a missing or broken file included); returns the full
    renders."""
    results: dict[tuple[Event, Channel], Rendered] = {}
    for event in Event:
        for channel in channels_for(event):
            for sparse in (True, False):
                try:
                    rendered = render(event, channel, **_probe_facts(event, sparse=sparse))
                except TemplateError as exc:
                    raise RuntimeError(f"template for {event} on {channel}: "
                                       f"{type(exc).__name__}: {exc}") from exc
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
    if channel in (Channel.EMAIL, Channel.LOG) and _PROBE_OPT_OUT.url not in rendered.text:
        fail("no unsubscribe link in the text")
    if channel is Channel.EMAIL and rendered.html is not None:
        escaped = _PROBE_OPT_OUT.url.replace("&", "&amp;")
        if f'href="{escaped}"' not in rendered.html:
            fail("no unsubscribe link in the HTML")
    if channel is Channel.SMS and f"Reply {_PROBE_OPT_OUT.keyword}" not in rendered.text:
        fail("no opt-out keyword in the SMS")
