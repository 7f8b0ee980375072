"""Routing rules (F13, F14): push while the app is active, then the customer's channels
in order; opt-outs, missing addresses and excluded segments; quiet hours in the
customer's own time zone, across midnight; the daily digest hour."""

from __future__ import annotations

from datetime import UTC, datetime, time

from backorders.notify.message import Channel, Event
from backorders.notify.routing import (
    Contact,
    Preferences,
    next_local_hour,
    quiet_hours_end,
    route_customer,
    route_staff,
)

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
EVERYWHERE = Contact(email="a@example.com", phone="+15551234567", push_token="tok-1")
ALL = frozenset({Channel.EMAIL, Channel.SMS, Channel.PUSH})


def route(prefs: Preferences, contact: Contact = EVERYWHERE, *, now: datetime = NOW,
          configured: frozenset[Channel] = ALL, excluded: frozenset[str] = frozenset()):
    return route_customer(Event.ALLOCATED, prefs, contact, now, excluded_segments=excluded,
                          configured=configured, digest_hour=8)


def test_preferred_channels_are_tried_in_order_with_the_rest_as_fallbacks():
    r = route(Preferences(channels=(Channel.SMS, Channel.EMAIL)))
    assert r.status == "pending"
    assert [(a.channel, a.to) for a in r.attempts] == [
        (Channel.SMS, "+15551234567"), (Channel.EMAIL, "a@example.com")]


def test_push_comes_first_while_the_app_session_is_active_and_not_after():
    active = Preferences(app_active_until=datetime(2026, 3, 3, 12, 5, tzinfo=UTC))
    assert [a.channel for a in route(active).attempts] == [Channel.PUSH, Channel.EMAIL]
    expired = Preferences(app_active_until=datetime(2026, 3, 3, 11, 0, tzinfo=UTC))
    assert [a.channel for a in route(expired).attempts] == [Channel.EMAIL]


def test_opted_out_channels_are_never_used():
    r = route(Preferences(channels=(Channel.EMAIL, Channel.SMS),
                          opted_out=frozenset({Channel.EMAIL})))
    assert [a.channel for a in r.attempts] == [Channel.SMS]
    r = route(Preferences(channels=(Channel.EMAIL,), opted_out=frozenset({Channel.EMAIL})))
    assert r.status == "suppressed" and "opted out" in (r.reason or "")


def test_a_channel_without_an_address_is_skipped_and_none_left_suppresses():
    r = route(Preferences(channels=(Channel.SMS, Channel.EMAIL)), Contact(email="a@example.com"))
    assert [a.channel for a in r.attempts] == [Channel.EMAIL]
    r = route(Preferences(channels=(Channel.SMS,)), Contact(email="a@example.com"))
    assert r.status == "suppressed" and "no address" in (r.reason or "")


def test_excluded_segments_are_suppressed_with_the_reason():
    r = route(Preferences(segments=frozenset({"wholesale"})), excluded=frozenset({"wholesale"}))
    assert r.status == "suppressed" and "wholesale" in (r.reason or "")


def test_channels_without_credentials_go_to_the_log_keeping_the_address():
    r = route(Preferences(channels=(Channel.EMAIL,)), configured=frozenset())
    assert [(a.channel, a.via, a.to) for a in r.attempts] == [
        (Channel.EMAIL, Channel.LOG, "a@example.com")]


def test_quiet_hours_hold_the_message_until_they_end_in_the_customers_time_zone():
    # 12:00 UTC is 21:00 in Tokyo: inside 20:00-07:00, so it waits until 07:00 Tokyo.
    prefs = Preferences(timezone="Asia/Tokyo", quiet_start=time(20), quiet_end=time(7))
    r = route(prefs)
    assert r.status == "queued" and "quiet hours" in (r.reason or "")
    assert r.send_after == datetime(2026, 3, 3, 22, 0, tzinfo=UTC)  # 07:00 JST next day
    # The same window seen from Paris (13:00) is outside quiet hours.
    assert route(Preferences(timezone="Europe/Paris", quiet_start=time(20),
                             quiet_end=time(7))).status == "pending"


def test_quiet_hours_after_midnight_end_the_same_morning():
    prefs = Preferences(timezone="UTC", quiet_start=time(22), quiet_end=time(6))
    at_two = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    assert quiet_hours_end(at_two, prefs) == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(datetime(2026, 3, 3, 6, 0, tzinfo=UTC), prefs) is None


def test_daily_digest_queues_until_the_local_digest_hour():
    r = route(Preferences(digest="daily", timezone="America/New_York"))
    assert r.status == "queued" and r.digest
    # 12:00 UTC is 07:00 in New York: the 08:00 digest is an hour away.
    assert r.send_after == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
    assert next_local_hour(datetime(2026, 3, 3, 13, 30, tzinfo=UTC), "America/New_York", 8) \
        == datetime(2026, 3, 4, 13, 0, tzinfo=UTC)


def test_staff_alerts_go_to_every_member_of_the_teams_concerned():
    teams = {"sales": ["s@x.com"], "purchasing": ["p@x.com", "s@x.com"], "account_team": ["a@x"]}
    routes = route_staff(Event.RECEIPT_PROCESSED, teams, frozenset({Channel.EMAIL}))
    assert sorted(r.attempts[0].to for r in routes) == ["p@x.com", "s@x.com"]
    assert [r.attempts[0].to for r in route_staff(Event.ESCALATION, teams, frozenset())] == ["a@x"]
