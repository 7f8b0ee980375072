"""The channel registry: each sales channel's kind, webhook secret, validation rules and
account overrides, and its intake health.

A platform's webhook secret is needed as itself to check HMAC signatures, so it is kept
encrypted (Fernet, under a key derived from API_KEY_PEPPER) rather than hashed, and never
returned."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncEngine

from backorders.db import autocommit
from backorders.schemas import AccountRules, ChannelHealth, ChannelIn, ChannelOut, ChannelRules
from backorders.services import unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, Invalid, NotFound
from backorders.services.unit_of_work import UnitOfWork
from backorders.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"backorders channel secrets").derive(
        settings.api_key_pepper.get_secret_value().encode())
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class ChannelConfig:
    """A channel as intake uses it, with its secret readable."""

    name: str
    kind: str
    secret: str | None
    rules: ChannelRules
    accounts: dict[str, AccountRules]
    default_region: str


def _check(name: str, body: ChannelIn) -> None:
    if body.kind == "native" and body.secret is not None:
        raise Invalid("secret_not_allowed", "a native channel's orders come with a channel "
                      "API key; it has no webhook secret", field="secret")


async def put_channel(engine: AsyncEngine, settings: Settings, name: str, body: ChannelIn, *,
                      audit: Audit | None = None) -> tuple[ChannelOut, bool]:
    """Create or replace a channel. A platform channel keeps its secret when the body
    leaves it out; a new one must have one."""
    _check(name, body)
    secret = (_fernet(settings).encrypt(body.secret.get_secret_value().encode())
              if body.secret is not None else None)

    async def work(uow: UnitOfWork) -> bool:
        existing = (await uow.conn.execute(sa.text(
            "SELECT kind, secret IS NOT NULL AS has_secret FROM channels WHERE name = :n "
            "FOR UPDATE"), {"n": name})).one_or_none()
        keeps_secret = existing is not None and existing.has_secret and existing.kind != "native"
        if body.kind != "native" and secret is None and not keeps_secret:
            raise Invalid("secret_required", f"a {body.kind} channel needs the secret its "
                          "webhooks are signed with", field="secret")
        created = (await uow.conn.execute(sa.text(
            """
            INSERT INTO channels (name, kind, secret, validation, accounts, default_region)
            VALUES (:n, :kind, :secret, CAST(:validation AS jsonb), CAST(:accounts AS jsonb),
                    :region)
            ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind,
                secret = CASE WHEN EXCLUDED.kind = 'native' THEN NULL
                              ELSE coalesce(EXCLUDED.secret, channels.secret) END,
                validation = EXCLUDED.validation, accounts = EXCLUDED.accounts,
                default_region = EXCLUDED.default_region, updated_at = now()
            RETURNING (xmax = 0) AS created
            """), {"n": name, "kind": body.kind, "secret": secret,
                   "validation": body.validation.model_dump_json(),
                   "accounts": _accounts_json(body.accounts), "region": body.default_region})
        ).scalar_one()
        if uow.audit is not None:
            uow.audit.about(name, f"{'created' if created else 'replaced'} {body.kind} channel")
        return bool(created)

    created = await unit_of_work.run(engine, settings, work, audit=audit)
    _cache.pop((id(engine), name), None)
    return await get_channel(engine, name), created


def _accounts_json(accounts: dict[str, AccountRules]) -> str:
    import json

    return json.dumps({k: v.model_dump(mode="json", exclude_none=True)
                       for k, v in accounts.items()})


_HEALTH = """
    SELECT c.*, c.secret IS NOT NULL AS has_secret,
           h.last_received_at, coalesce(h.accepted, 0) AS accepted,
           coalesce(h.rejected, 0) AS rejected, coalesce(h.dead, 0) AS dead,
           coalesce(h.last_hour, 0) AS last_hour, coalesce(h.failed_last_hour, 0) AS failed_last_hour
    FROM channels c
    LEFT JOIN LATERAL (
        SELECT max(i.received_at) AS last_received_at,
               count(*) FILTER (WHERE i.state = 'accepted') AS accepted,
               count(*) FILTER (WHERE i.state = 'rejected') AS rejected,
               count(*) FILTER (WHERE i.state = 'dead') AS dead,
               count(*) FILTER (WHERE i.received_at > now() - interval '1 hour') AS last_hour,
               count(*) FILTER (WHERE i.received_at > now() - interval '1 hour'
                                  AND i.state <> 'accepted') AS failed_last_hour
        FROM intakes i WHERE i.channel = c.name
    ) h ON true
"""


def _out(r: Any) -> ChannelOut:
    return ChannelOut(
        name=r.name, kind=r.kind, has_secret=r.has_secret,
        validation=ChannelRules.model_validate(r.validation),
        accounts={k: AccountRules.model_validate(v) for k, v in r.accounts.items()},
        default_region=r.default_region, created_at=r.created_at, updated_at=r.updated_at,
        health=ChannelHealth(
            last_received_at=r.last_received_at, accepted=r.accepted, rejected=r.rejected,
            dead=r.dead, received_last_hour=r.last_hour,
            error_rate_last_hour=(r.failed_last_hour / r.last_hour) if r.last_hour else None))


async def list_channels(engine: AsyncEngine) -> list[ChannelOut]:
    async with autocommit(engine).connect() as conn:
        rows = (await conn.execute(sa.text(_HEALTH + " ORDER BY c.name"))).all()
    return [_out(r) for r in rows]


async def get_channel(engine: AsyncEngine, name: str) -> ChannelOut:
    async with autocommit(engine).connect() as conn:
        row = (await conn.execute(sa.text(_HEALTH + " WHERE c.name = :n"), {"n": name})
               ).one_or_none()
    if row is None:
        raise NotFound("unknown_channel", f"no channel {name!r}", field="name")
    return _out(row)


CACHE_SECONDS = 2.0
"""How long an API process keeps a channel's config: a change made through another
process (or the database) takes effect within this, one made here at once."""
_cache: dict[tuple[int, str], tuple[float, ChannelConfig | None]] = {}


async def load(engine: AsyncEngine, settings: Settings, name: str) -> ChannelConfig | None:
    """The channel as intake needs it, or None when there is no such channel; read at
    most every CACHE_SECONDS per process (a burst needs neither the query nor the
    secret's decryption on every order)."""
    key = (id(engine), name)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    config = await _load(engine, settings, name)
    _cache[key] = (time.monotonic(), config)
    return config


async def _load(engine: AsyncEngine, settings: Settings, name: str) -> ChannelConfig | None:
    async with autocommit(engine).connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM channels WHERE name = :n"),
                                  {"n": name})).one_or_none()
    if row is None:
        return None
    secret = None
    if row.secret is not None:
        try:
            secret = _fernet(settings).decrypt(row.secret).decode()
        except InvalidToken:
            raise Conflict("channel_secret_unreadable",
                           f"channel {name!r}'s secret was stored under another API_KEY_PEPPER: "
                           "set it again with PUT /channels/{name}", field="secret") from None
    return ChannelConfig(name=row.name, kind=row.kind, secret=secret,
                         rules=ChannelRules.model_validate(row.validation),
                         accounts={k: AccountRules.model_validate(v)
                                   for k, v in row.accounts.items()},
                         default_region=row.default_region)
