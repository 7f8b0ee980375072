"""Bring a database to the newest schema (used by `make run`, the tests and the bench)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def upgrade(database_url: str) -> None:
    from backorders.settings import Settings

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = Settings(database_url=database_url).database_url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")
