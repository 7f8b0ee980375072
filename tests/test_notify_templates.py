"""What notifications say: every event renders on its channels, broken templates fail
loudly, HTML is escaped, the opt-out is always there and dates are honest."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest
from jinja2 import DictLoader, FileSystemLoader, TemplateRuntimeError, UndefinedError

from backorders.embedded.ports import free_port
from backorders.notify import templates
from backorders.notify.message import Channel, Event
from backorders.notify.templates import (
    CUSTOMER_CHANNELS,
    ENV,
    STAFF_CHANNELS,
    STAFF_EVENTS,
    CustomerFacts,
    LineFacts,
    OptOut,
    channels_for,
    check_all,
    longdate,
    render,
)
from backorders.settings import Settings
from tests.template_samples import sample_facts

CUSTOMER_EVENTS = [event for event in Event if event not in STAFF_EVENTS]
EVERY_PAIR = [(event, channel) for event in Event for channel in channels_for(event)]
OPT_OUT = OptOut(url="https://shop.example/u?c=C-9&t=xyz", keyword="END")


def _line(**changes: object) -> LineFacts:
    line = LineFacts(
        order_number="5001",
        sku="LAMP-1",
        product_name="Desk lamp",
        quantity=4,
        backordered_quantity=4,
        shipped_quantity=0,
        status="backordered",
        queue_position=2,
        units_ahead=6,
        expected_date=date(2026, 3, 3),
    )
    return dataclasses.replace(line, **changes)


def _customer_render(event: Event, channel: Channel, **changes: object):
    return render(
        event,
        channel,
        customer=CustomerFacts(id="C-9", name="Grace"),
        line=_line(**changes),
        lines=[_line(**changes)],
        opt_out=OPT_OUT,
    )


# --- Every event, every channel ---------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize(("event", "channel"), EVERY_PAIR, ids=[f"{e}-{c}" for e, c in EVERY_PAIR])
def test_every_event_renders_on_every_channel_it_applies_to(
    event: Event, channel: Channel, sparse: bool
) -> None:
    rendered = render(event, channel, **sample_facts(event, sparse=sparse))

    assert rendered.subject and rendered.text
    assert "\n" not in rendered.subject
    for part in (rendered.subject, rendered.text, rendered.html or ""):
        for leftover in ("{{", "}}", "{%", "%}", "None"):
            assert leftover not in part
    assert (rendered.html is not None) == (channel is Channel.EMAIL)
    if channel is Channel.LOG:
        assert rendered.text == render(event, Channel.EMAIL, **sample_facts(event, sparse=sparse)).text


def test_customer_events_go_everywhere_and_staff_events_only_by_email_and_log() -> None:
    for event in Event:
        expected = STAFF_CHANNELS if event in STAFF_EVENTS else CUSTOMER_CHANNELS
        assert channels_for(event) == expected


@pytest.mark.parametrize("event", sorted(STAFF_EVENTS))
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.PUSH])
def test_staff_event_refuses_sms_and_push(event: Event, channel: Channel) -> None:
    with pytest.raises(ValueError, match="not sent by"):
        render(event, channel, **sample_facts(event))


def test_check_all_renders_every_event_on_every_applicable_channel() -> None:
    assert set(check_all()) == set(EVERY_PAIR)


def _break_templates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
                     text: str | None) -> None:
    """Render from a copy of the templates in which `name` says `text` (None: is gone)."""
    copy = tmp_path / "templates"
    shutil.copytree(Path(templates.__file__).parent / "templates", copy)
    if text is None:
        (copy / name).unlink()
    else:
        (copy / name).write_text(text)
    monkeypatch.setattr(templates, "ENV", ENV.overlay(loader=FileSystemLoader(copy)))


@pytest.mark.parametrize(("name", "text", "error"), [
    ("customer/allocated.txt.j2", "{{ line.colour }}", "allocated on email: UndefinedError"),
    ("customer/allocated.txt.j2", "{% if line.sku %}", "allocated on email: TemplateSyntaxError"),
    ("customer/allocated.short.j2", None, "allocated on sms: TemplateNotFound"),
    ("staff/low_stock.subject.j2", "", "low_stock on email: empty subject"),
], ids=["undefined", "syntax", "missing", "empty"])
def test_check_all_names_the_broken_template(monkeypatch, tmp_path, name, text, error) -> None:
    _break_templates(monkeypatch, tmp_path, name, text)
    with pytest.raises(RuntimeError, match=f"template for {error}"):
        check_all()


async def test_the_worker_refuses_to_start_with_a_broken_template(monkeypatch, tmp_path) -> None:
    """It fails before it connects anywhere (nothing listens at its Temporal address)."""
    import worker

    _break_templates(monkeypatch, tmp_path, "customer/dispatched.html.j2", "{{ line.colour }}")
    settings = Settings(_env_file=None, temporal_address=f"127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeError, match="template for dispatched on email"):
        await asyncio.wait_for(worker.run(settings, asyncio.Event()), timeout=10)


# --- Failing loudly ---------------------------------------------------------------------


def test_undefined_variable_fails_loudly() -> None:
    with pytest.raises(UndefinedError):
        ENV.from_string("Hello {{ customer_name }}").render()


def test_missing_attribute_fails_loudly() -> None:
    with pytest.raises(UndefinedError):
        ENV.from_string("{{ line.colour }}").render(line=_line())


def test_broken_template_file_fails_loudly_with_the_same_settings() -> None:
    broken = ENV.overlay(loader=DictLoader({"broken.html.j2": "<p>{{ line.order_numbr }}</p>"}))
    with pytest.raises(UndefinedError):
        broken.get_template("broken.html.j2").render(line=_line())


def test_real_template_with_incomplete_context_fails_loudly() -> None:
    template = ENV.get_template("customer/backordered.txt.j2")
    with pytest.raises(UndefinedError):
        template.render(line=_line(), customer=CustomerFacts(id="C-9", name=None))  # no opt_out


def test_printing_none_fails_loudly() -> None:
    with pytest.raises(TemplateRuntimeError, match="None"):
        ENV.from_string("Expected {{ line.expected_date }}").render(line=_line(expected_date=None))


def test_longdate_of_none_fails_loudly() -> None:
    with pytest.raises(TemplateRuntimeError):
        ENV.from_string("{{ d|longdate }}").render(d=None)


@pytest.mark.parametrize("event", CUSTOMER_EVENTS)
@pytest.mark.parametrize("channel", CUSTOMER_CHANNELS)
def test_customer_render_without_opt_out_raises(event: Event, channel: Channel) -> None:
    facts = sample_facts(event)
    del facts["opt_out"]
    with pytest.raises(ValueError, match="opt_out"):
        render(event, channel, **facts)


def test_render_without_the_line_raises() -> None:
    with pytest.raises(ValueError, match="line"):
        render(Event.BACKORDERED, Channel.EMAIL, customer=CustomerFacts(id="C-9", name=None),
               opt_out=OPT_OUT)


def test_digest_without_lines_raises() -> None:
    with pytest.raises(ValueError, match="lines"):
        render(Event.DIGEST, Channel.EMAIL, customer=CustomerFacts(id="C-9", name=None), lines=[],
               opt_out=OPT_OUT)


# --- Escaping ---------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_autoescape_is_on_for_html_templates_only() -> None:
    assert ENV.autoescape("customer/backordered.html.j2") is True
    for name in ("customer/backordered.txt.j2", "customer/backordered.short.j2",
                 "customer/backordered.subject.j2"):
        assert ENV.autoescape(name) is False


def test_html_escapes_customer_provided_text() -> None:
    rendered = render(
        Event.DELAYED,
        Channel.EMAIL,
        customer=CustomerFacts(id="C-9", name="Bob & <b>Co</b>"),
        line=_line(product_name=SCRIPT, reason='"quoted" <i>reason</i>'),
        opt_out=OPT_OUT,
    )

    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Bob &amp; &lt;b&gt;Co&lt;/b&gt;" in rendered.html
    assert "&lt;i&gt;reason&lt;/i&gt;" in rendered.html
    # Plain text is not HTML: it says exactly what the customer typed.
    assert SCRIPT in rendered.text
    assert "Bob & <b>Co</b>" in rendered.text
    assert "&lt;" not in rendered.text and "&amp;" not in rendered.text


def test_html_escapes_text_in_staff_messages() -> None:
    rendered = render(Event.ESCALATION, Channel.EMAIL, customer=CustomerFacts(id="C-9", name=SCRIPT),
                      line=_line(product_name=SCRIPT))
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert SCRIPT in rendered.text


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.PUSH])
def test_sms_and_push_are_not_html_escaped(channel: Channel) -> None:
    rendered = _customer_render(Event.BACKORDERED, channel, product_name="Salt & <Pepper>")
    assert "Salt & <Pepper>" in rendered.text
    assert "&amp;" not in rendered.text


def test_subject_is_plain_one_line_text() -> None:
    rendered = _customer_render(Event.BACKORDERED, Channel.EMAIL, product_name="Tea & cake\r\nBcc: x@y")
    assert "Tea & cake Bcc: x@y" in rendered.subject
    assert "\r" not in rendered.subject and "\n" not in rendered.subject


# --- Opt-out ----------------------------------------------------------------------------


@pytest.mark.parametrize("event", CUSTOMER_EVENTS)
def test_customer_email_carries_the_unsubscribe_link(event: Event) -> None:
    rendered = render(event, Channel.EMAIL, **{**sample_facts(event), "opt_out": OPT_OUT})
    assert OPT_OUT.url in rendered.text
    assert rendered.html is not None
    assert 'href="https://shop.example/u?c=C-9&amp;t=xyz"' in rendered.html


@pytest.mark.parametrize("event", CUSTOMER_EVENTS)
def test_customer_sms_carries_the_opt_out_keyword(event: Event) -> None:
    rendered = render(event, Channel.SMS, **{**sample_facts(event), "opt_out": OPT_OUT})
    assert rendered.text.endswith("Reply END to opt out.")


def test_push_leaves_the_opt_out_out() -> None:
    rendered = _customer_render(Event.BACKORDERED, Channel.PUSH)
    assert "Reply END" not in rendered.text
    assert OPT_OUT.url not in rendered.text


def test_customer_log_keeps_the_email_text() -> None:
    email = _customer_render(Event.STATUS_UPDATE, Channel.EMAIL)
    log = _customer_render(Event.STATUS_UPDATE, Channel.LOG)
    assert log == dataclasses.replace(email, html=None)


# --- Honest dates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (date(2026, 3, 3), "Tuesday 3 March 2026"),
        (date(2024, 2, 29), "Thursday 29 February 2024"),
        (date(2025, 12, 31), "Wednesday 31 December 2025"),
    ],
)
def test_dates_are_written_out_in_full(day: date, words: str) -> None:
    assert longdate(day) == words


def test_known_expected_date_is_given_on_every_channel() -> None:
    for channel in CUSTOMER_CHANNELS:
        rendered = _customer_render(Event.BACKORDERED, channel)
        assert "Tuesday 3 March 2026" in rendered.text
        assert rendered.html is None or "Tuesday 3 March 2026" in rendered.html


@pytest.mark.parametrize(
    "event", [Event.BACKORDERED, Event.DELAYED, Event.STATUS_UPDATE, Event.PROMISE_MISSED]
)
def test_unknown_expected_date_says_no_date_is_known(event: Event) -> None:
    for channel in CUSTOMER_CHANNELS:
        rendered = _customer_render(event, channel, expected_date=None)
        said = rendered.text.lower()
        assert "no date is known yet" in said or "no delivery date is known yet" in said \
            or "do not have a new date yet" in said or "no new date is known yet" in said
        assert not any(day in rendered.text for day in ("Monday", "Tuesday", "Wednesday", "Thursday",
                                                        "Friday", "Saturday", "Sunday"))


def test_unknown_expected_date_in_a_backordered_email() -> None:
    rendered = _customer_render(Event.BACKORDERED, Channel.EMAIL, expected_date=None)
    assert "Expected delivery: no date is known yet." in rendered.text
    assert rendered.html is not None and "no date is known yet" in rendered.html


# --- Compact SMS ------------------------------------------------------------------------


def test_typical_backordered_sms_is_compact() -> None:
    rendered = _customer_render(Event.BACKORDERED, Channel.SMS)
    assert len(rendered.text) <= 320
    assert "Desk lamp" in rendered.text and "5001" in rendered.text
    assert "Tuesday 3 March 2026" in rendered.text and "#2" in rendered.text


def test_sms_stays_compact_with_a_very_long_product_name() -> None:
    rendered = _customer_render(Event.BACKORDERED, Channel.SMS, product_name="Very long lamp " * 20)
    assert len(rendered.text) <= 320
    assert "..." in rendered.text


@pytest.mark.parametrize("event", CUSTOMER_EVENTS)
def test_every_customer_sms_with_sample_facts_fits_320_characters(event: Event) -> None:
    rendered = render(event, Channel.SMS, **sample_facts(event))
    assert len(rendered.text) <= 320


# --- Digest -----------------------------------------------------------------------------


def _digest_lines() -> list[LineFacts]:
    return [
        _line(order_number="7001", sku="A-1", product_name="Alpha"),
        _line(order_number="7002", sku="B-2", product_name=None, expected_date=None),
        _line(order_number="7003", sku="C-3", product_name="Gamma", status="dispatched",
              backordered_quantity=0, shipped_quantity=4),
        _line(order_number="7004", sku="D-4", product_name="Delta", status="allocated",
              backordered_quantity=0),
    ]


def test_digest_lists_every_line_by_email() -> None:
    lines = _digest_lines()
    rendered = render(Event.DIGEST, Channel.EMAIL, customer=CustomerFacts(id="C-9", name="Grace"),
                      lines=lines, opt_out=OPT_OUT)

    assert "4 items" in rendered.subject
    assert rendered.html is not None
    for body in (rendered.text, rendered.html):
        for line in lines:
            assert line.sku in body and line.order_number in body
        assert "Alpha" in body and "Gamma" in body and "Delta" in body
        assert "waiting for stock" in body and "dispatched" in body
        assert "Tuesday 3 March 2026" in body and "no date is known yet" in body
    assert rendered.html.count("<li>") == 4


def test_digest_sms_names_the_first_items_and_counts_the_rest() -> None:
    rendered = render(Event.DIGEST, Channel.SMS, customer=CustomerFacts(id="C-9", name=None),
                      lines=_digest_lines(), opt_out=OPT_OUT)
    assert "Alpha" in rendered.text and "SKU B-2" in rendered.text and "Gamma" in rendered.text
    assert "and 1 more item" in rendered.text
    assert len(rendered.text) <= 320
