"""Customer tiers, highest first. Pure code, safe in workflows."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    PLATINUM = "platinum"
    GOLD = "gold"
    SILVER = "silver"
    STANDARD = "standard"


# Lower rank is served first by priority queues.
TIER_RANK: dict[Tier, int] = {tier: rank for rank, tier in enumerate(Tier)}


class AllocationPolicy(StrEnum):
    FIFO = "fifo"
    PRIORITY = "priority"
