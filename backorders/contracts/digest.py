"""The daily digest workflow's public face: its type name, id scheme and input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WORKFLOW_TYPE = "CustomerDigest"


def workflow_id(customer_id: str, send_at: datetime) -> str:
    """One digest per customer and send time: a second start finds the first."""
    return f"digest-{customer_id}-{send_at.isoformat()}"


@dataclass
class DigestInput:
    customer_id: str
    send_at: datetime
