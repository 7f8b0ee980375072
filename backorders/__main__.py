"""Command line: `python -m backorders keys create|list|revoke`.

Runs against the database in the settings (DATABASE_URL; by default the one `make run`
starts), so keys can be made on the server without an admin key. `keys create` prints
the new key alone on the last line of stdout, for scripts:

    KEY=$(.venv/bin/python -m backorders keys create --role erp --name ERP | tail -n 1)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from backorders.db import create_engine, dispose
from backorders.domain.access import CLI, Caller, Role
from backorders.schemas import KeyIn
from backorders.services import keys
from backorders.services.audit import Audit
from backorders.services.errors import DomainError
from backorders.settings import Settings

T = TypeVar("T")


def _cli_caller() -> Caller:
    try:
        return Caller(name=f"{CLI.name} ({getpass.getuser()})")
    except Exception:
        return CLI


async def _with_engine(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    engine = create_engine(settings)
    try:
        return await work(engine)
    finally:
        await dispose(engine)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    body = KeyIn(name=args.name, role=Role(args.role), channel=args.channel)
    caller = _cli_caller()
    made = asyncio.run(_with_engine(settings, lambda engine: keys.create(
        engine, settings, body, by=caller,
        audit=Audit(caller, "CLI", "keys create"))))
    scope = f" for channel {made.channel}" if made.channel else ""
    print(f"created {made.role.value} key {made.id} ({made.name}){scope}.")
    print("It is shown only now; send it as `Authorization: Bearer <key>`:")
    print(made.key)
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    rows = asyncio.run(_with_engine(settings, keys.list_keys))
    header = ("ID", "ROLE", "CHANNEL", "NAME", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (k.id, k.role.value, k.channel or "-", k.name, f"{k.created_at:%Y-%m-%d %H:%M}",
         f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
         f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-")
        for k in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    caller = _cli_caller()
    key = asyncio.run(_with_engine(settings, lambda engine: keys.revoke(
        engine, settings, args.id, keep_an_admin=False,
        audit=Audit(caller, "CLI", "keys revoke"))))
    print(f"revoked {key.role.value} key {key.id} ({key.name}) at {key.revoked_at:%Y-%m-%d %H:%M:%S %Z}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m backorders",
                                  description="Backorders administration.")
    commands = top.add_subparsers(dest="area", required=True)
    keys_cmd = commands.add_parser("keys", help="API keys")
    sub = keys_cmd.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="make a key; prints it alone on the last line")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="who or what will use it")
    create.add_argument("--channel", help="the sales channel of a channel key")
    create.set_defaults(run=_create)
    sub.add_parser("list", help="every key, without secrets").set_defaults(run=_list)
    revoke = sub.add_parser("revoke", help="revoke a key at once, in every API process")
    revoke.add_argument("id", help="the key's id (the part after bo_)")
    revoke.set_defaults(run=_revoke)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    try:
        return args.run(settings, args)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "input"
            print(f"error: --{field}: {err['msg']}", file=sys.stderr)
        return 2
    except DomainError as exc:
        where = f"--{exc.field}: " if exc.field and exc.field != "key_id" else ""
        print(f"error: {where}{exc.message}", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as exc:
        print(f"error: cannot reach the database at {settings.libpq_url.split('@')[-1]}: "
              f"{getattr(exc, 'orig', exc)}\n(is `make run` up, or DATABASE_URL set?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
