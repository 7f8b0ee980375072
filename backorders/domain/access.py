"""Who may call: the four roles and the caller a request acts as. What each role may do
is the route table in `api/access.py`; which channel's orders a channel key sees is
`Caller.sees_channel`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CHANNEL = "channel"
    """A sales channel: its own orders only."""
    ERP = "erp"
    """Products, stock, receipts, purchase orders, suppliers, refunds; reads orders."""
    OPS = "ops"
    """Every read, cancellations, delays, replays, customer preferences."""
    ADMIN = "admin"
    """Everything, including keys."""


@dataclass(frozen=True)
class Caller:
    """Who a request (or a CLI command, or a signed webhook) acts as. `key_id` is None
    for callers without an API key: the CLI and the providers' webhooks."""

    name: str
    role: Role | None = None
    key_id: str | None = None
    channel: str | None = None

    def sees_channel(self, channel: str) -> bool:
        """A channel key sees only its own channel's orders; every other role sees all."""
        return self.role is not Role.CHANNEL or channel == self.channel

    @property
    def channel_scope(self) -> str | None:
        """The one channel this caller's reads are limited to, if any."""
        return self.channel if self.role is Role.CHANNEL else None


CLI = Caller(name="cli")
"""Key management from the command line on the server itself."""
