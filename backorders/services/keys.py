"""API keys: issued once, stored as a keyed hash, checked on every request.

A key reads `bo_<id>_<secret>`: the id is public (it names the key in lists and the
audit trail and finds its row), the secret is 256 random bits. Only
HMAC-SHA256(pepper, id.secret) is stored: for a token this random a slow password hash
adds latency and no safety, and the pepper keeps a copied table from being checked
offline. Every request reads the key's row, so a revocation holds from the next
request in every API process."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backorders.domain.access import Caller, Role
from backorders.models import ApiKey
from backorders.schemas import KeyIn, KeyOut, NewKeyOut
from backorders.services import unit_of_work
from backorders.services.audit import Audit
from backorders.services.errors import Conflict, Invalid, NotFound
from backorders.services.unit_of_work import UnitOfWork
from backorders.settings import Settings

PREFIX = "bo"
ID_BYTES = 6
SECRET_BYTES = 32

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is refreshed at most this often, so reads stay reads."""

_UNUSABLE = b"\x00" * 32
"""Compared against when no row matched, so an unknown id costs what a wrong secret does."""


@dataclass(frozen=True)
class Token:
    key_id: str
    secret: str

    def __str__(self) -> str:
        return f"{PREFIX}_{self.key_id}_{self.secret}"

    @classmethod
    def new(cls) -> Token:
        return cls(secrets.token_hex(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES))

    @classmethod
    def parse(cls, text: str) -> Token | None:
        prefix, _, rest = text.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or len(key_id) != 2 * ID_BYTES or not secret or len(text) > 200:
            return None
        return cls(key_id, secret)


def secret_hash(settings: Settings, key_id: str, secret: str) -> bytes:
    pepper = settings.api_key_pepper.get_secret_value().encode()
    return hmac.new(pepper, f"{key_id}.{secret}".encode(), hashlib.sha256).digest()


COLUMNS = [c for c in ApiKey.__table__.c if c.name != "secret_hash"]
"""Everything about a key but its hash, which never leaves `authenticate`."""


def _out(row: sa.Row) -> KeyOut:
    return KeyOut.model_validate(row, from_attributes=True)


async def authenticate(engine: AsyncEngine, settings: Settings, presented: str) -> Caller | None:
    """The caller a presented key proves, or None: unknown, revoked and malformed keys
    look the same from outside, in answer and in time."""
    token = Token.parse(presented)
    key_id, secret = (token.key_id, token.secret) if token else ("", presented)
    digest = secret_hash(settings, key_id, secret)
    row = None
    if token is not None:
        async with engine.connect() as conn:
            row = (await conn.execute(
                sa.select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.channel, ApiKey.secret_hash,
                          ApiKey.last_used_at)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))).first()
            matches = hmac.compare_digest(digest, row.secret_hash if row else _UNUSABLE)
            if row is not None and matches and _stale(row.last_used_at):
                await conn.execute(sa.update(ApiKey).where(ApiKey.id == key_id)
                                   .values(last_used_at=sa.func.now()))
                await conn.commit()
    else:
        matches = hmac.compare_digest(digest, _UNUSABLE)
    if row is None or not matches:
        return None
    return Caller(name=row.name, role=Role(row.role), key_id=row.id, channel=row.channel)


def _stale(last_used_at: datetime | None) -> bool:
    return last_used_at is None or datetime.now(UTC) - last_used_at > LAST_USED_RESOLUTION


def _check(body: KeyIn) -> None:
    if body.role is Role.CHANNEL and body.channel is None:
        raise Invalid("channel_required", "a channel key must name its channel", field="channel")
    if body.role is not Role.CHANNEL and body.channel is not None:
        raise Invalid("channel_not_allowed",
                      f"only a channel key is bound to a channel; this is a key for {body.role.value}",
                      field="channel")


async def _insert(uow: UnitOfWork, body: KeyIn, by: Caller) -> NewKeyOut:
    token = Token.new()
    row = (await uow.conn.execute(
        sa.insert(ApiKey).values(
            id=token.key_id, name=body.name, role=body.role.value, channel=body.channel,
            secret_hash=secret_hash(uow.settings, token.key_id, token.secret),
            created_by=by.key_id or by.name)
        .returning(*COLUMNS))).one()
    if uow.audit is not None:
        uow.audit.about(token.key_id, f"created {body.role.value} key {body.name!r}")
    return NewKeyOut(**_out(row).model_dump(), key=str(token))


async def create(engine: AsyncEngine, settings: Settings, body: KeyIn, *, by: Caller,
                 audit: Audit | None = None) -> NewKeyOut:
    _check(body)

    async def work(uow: UnitOfWork) -> NewKeyOut:
        return await _insert(uow, body, by)

    return await unit_of_work.run(engine, settings, work, audit=audit)


async def create_first_admin(engine: AsyncEngine, settings: Settings, *, by: Caller,
                             audit: Audit | None = None) -> NewKeyOut | None:
    """An admin key for a database that has never had one, else None: two stacks starting
    at once on one database create one key between them."""
    body = KeyIn(name="first admin key", role=Role.ADMIN)

    async def work(uow: UnitOfWork) -> NewKeyOut | None:
        await uow.conn.execute(sa.text("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE"))
        if await uow.conn.scalar(sa.select(sa.func.count()).select_from(ApiKey)):
            uow.audit = None  # nothing changed, so nothing to record
            return None
        return await _insert(uow, body, by)

    return await unit_of_work.run(engine, settings, work, audit=audit)


async def list_keys(engine: AsyncEngine) -> list[KeyOut]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*COLUMNS).order_by(ApiKey.created_at, ApiKey.id))).all()
        return [_out(r) for r in rows]


async def revoke(engine: AsyncEngine, settings: Settings, key_id: str, *,
                 keep_an_admin: bool = True, audit: Audit | None = None) -> KeyOut:
    """Revoke a key; revoking a revoked key changes nothing. Through the API the last
    working admin key stays (`keep_an_admin`), so nobody locks everyone out; the CLI on
    the server may, since it can always make another."""
    if audit is not None:
        audit.about(key_id)

    async def work(uow: UnitOfWork) -> KeyOut:
        row = (await uow.conn.execute(
            sa.select(*COLUMNS).where(ApiKey.id == key_id).with_for_update())).one_or_none()
        if row is None:
            raise NotFound("unknown_key", f"no API key {key_id}", field="key_id")
        if row.revoked_at is not None:
            if uow.audit is not None:
                uow.audit.detail = "already revoked"
            return _out(row)
        if keep_an_admin and row.role == Role.ADMIN:
            await _keep_an_admin(uow.conn, key_id)
        revoked = (await uow.conn.execute(
            sa.update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=sa.func.now())
            .returning(*COLUMNS))).one()
        if uow.audit is not None:
            uow.audit.detail = f"revoked {row.role} key {row.name!r}"
        return _out(revoked)

    return await unit_of_work.run(engine, settings, work, audit=audit)


async def _keep_an_admin(conn: AsyncConnection, key_id: str) -> None:
    # Locks every working admin key, so two revocations at once cannot each leave the other.
    admins = (await conn.execute(
        sa.select(ApiKey.id).where(ApiKey.role == Role.ADMIN.value, ApiKey.revoked_at.is_(None))
        .with_for_update())).scalars().all()
    if not set(admins) - {key_id}:
        raise Conflict("last_admin_key",
                       f"{key_id} is the last working admin key; create another admin key "
                       "first (or revoke it with the CLI on the server)", field="key_id")
