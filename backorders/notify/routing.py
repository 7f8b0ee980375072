"""Who hears about an event, on which channels in which order, and when: the one place
for notification routing, preferences, quiet hours and digests. Pure functions, so every
rule is tested without a database or a provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from backorders.notify.message import Channel, Event

CUSTOMER_EVENTS = frozenset({
    Event.BACKORDERED, Event.ALLOCATED, Event.DISPATCHED, Event.DELAYED, Event.CANCELLED,
    Event.STATUS_UPDATE, Event.PROMISE_MISSED, Event.DIGEST,
})
STAFF_TEAMS = {
    Event.STAFF_PROMISE_MISSED: ("sales",),
    Event.ESCALATION: ("account_team",),
    Event.LOW_STOCK: ("purchasing",),
    Event.SUPPLY_SHORTFALL: ("purchasing", "sales"),
    Event.RECEIPT_PROCESSED: ("sales", "purchasing"),
    Event.INTAKE_DEAD: ("sales",),
    Event.IMPENDING_SHORTAGE: ("purchasing",),
}
"""Which staff teams each internal alert goes to."""


@dataclass(frozen=True)
class Contact:
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None

    def address(self, channel: Channel) -> str | None:
        return {Channel.EMAIL: self.email, Channel.SMS: self.phone,
                Channel.PUSH: self.push_token}.get(channel)


@dataclass(frozen=True)
class Preferences:
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    digest: str = "instant"  # or "daily"
    timezone: str = "UTC"
    quiet_start: time | None = None
    quiet_end: time | None = None
    opted_out: frozenset[Channel] = field(default_factory=frozenset)
    segments: frozenset[str] = field(default_factory=frozenset)
    app_active_until: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    """One way to reach the recipient: the channel carrying it and the address on it.
    `via` is the provider actually used (LOG when the channel has no credentials)."""

    channel: Channel
    to: str
    via: Channel


@dataclass(frozen=True)
class Route:
    status: str  # pending (send now), queued (later: quiet hours or digest), suppressed
    attempts: tuple[Attempt, ...] = ()
    reason: str | None = None
    send_after: datetime | None = None
    digest: bool = False


def route_customer(
    event: Event,
    prefs: Preferences,
    contact: Contact,
    now: datetime,
    *,
    excluded_segments: frozenset[str] | set[str],
    configured: frozenset[Channel] | set[Channel],
    digest_hour: int,
) -> Route:
    """Push first while the customer's app is active, then their channels in the order
    they chose; opted-out channels and channels we have no address for are skipped, and
    the rest are fallbacks in order."""
    excluded = sorted(prefs.segments & set(excluded_segments))
    if excluded:
        return Route("suppressed", reason=f"customer segment {excluded[0]!r} is excluded "
                                          "from notifications")
    order: list[Channel] = []
    if prefs.app_active_until is not None and prefs.app_active_until > now:
        order.append(Channel.PUSH)
    order += [c for c in prefs.channels if c not in order]
    wanted = [c for c in order if c not in prefs.opted_out]
    if not wanted:
        return Route("suppressed", reason="opted out of every channel")
    attempts = tuple(
        Attempt(c, address, c if c in configured else Channel.LOG)
        for c in wanted if (address := contact.address(c))
    )
    if not attempts:
        return Route("suppressed", reason="no address on file for " + ", ".join(wanted))
    if prefs.digest == "daily" and event != Event.DIGEST:
        return Route("queued", attempts, reason="in the daily digest", digest=True,
                     send_after=next_local_hour(now, prefs.timezone, digest_hour))
    quiet_until = quiet_hours_end(now, prefs)
    if quiet_until is not None:
        local = quiet_until.astimezone(ZoneInfo(prefs.timezone))
        return Route("queued", attempts, send_after=quiet_until,
                     reason=f"quiet hours until {local:%H:%M} {prefs.timezone}")
    return Route("pending", attempts)


def route_staff(
    event: Event,
    teams: dict[str, list[str]],
    configured: frozenset[Channel] | set[Channel],
) -> list[Route]:
    """One route per staff recipient, by email (or the log without credentials)."""
    via = Channel.EMAIL if Channel.EMAIL in configured else Channel.LOG
    recipients = sorted({r for team in STAFF_TEAMS[event] for r in teams.get(team, [])})
    return [Route("pending", (Attempt(Channel.EMAIL, r, via),)) for r in recipients]


def quiet_hours_end(now: datetime, prefs: Preferences) -> datetime | None:
    """When the quiet hours `now` falls in end, or None outside them. A window may span
    midnight (22:00-07:00)."""
    start, end = prefs.quiet_start, prefs.quiet_end
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(prefs.timezone)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone)


def next_local_hour(now: datetime, timezone: str, hour: int) -> datetime:
    """The next time it is `hour`:00 where the customer lives."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone)
    return at
