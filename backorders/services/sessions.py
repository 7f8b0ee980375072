"""Dashboard sign-ins, kept server-side: a session is a row naming the key that proved
itself at sign-in, so signing out ends it everywhere (a copied cookie stops working),
revoking the key ends all its sessions, and each carries its own form token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.domain.access import Caller, Role


@dataclass(frozen=True)
class Session:
    id: str
    caller: Caller
    csrf: str


async def open_session(engine: AsyncEngine, key_id: str, lifetime: timedelta) -> str:
    session_id = secrets.token_urlsafe(24)
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            """
            INSERT INTO dashboard_sessions (id, key_id, csrf, expires_at)
            VALUES (:id, :key, :csrf, now() + make_interval(secs => :secs))
            """), {"id": session_id, "key": key_id, "csrf": secrets.token_urlsafe(18),
                   "secs": lifetime.total_seconds()})
    return session_id


async def find(engine: AsyncEngine, session_id: str) -> Session | None:
    """The live session, or None: ended, expired, or its key revoked."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text(
            """
            SELECT s.id, s.csrf, k.id AS key_id, k.name, k.role, k.channel
            FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id
            WHERE s.id = :id AND s.ended_at IS NULL AND s.expires_at > now()
              AND k.revoked_at IS NULL
            """), {"id": session_id})).one_or_none()
    if row is None:
        return None
    return Session(row.id, Caller(name=row.name, role=Role(row.role), key_id=row.key_id,
                                  channel=row.channel), row.csrf)


async def end(engine: AsyncEngine, session_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "UPDATE dashboard_sessions SET ended_at = now() WHERE id = :id AND ended_at IS NULL"),
            {"id": session_id})
