"""Bring a database to the newest schema (used by `make run`, the tests and the bench)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent


def _config() -> Config:
    """This repository's migrations, wherever the process was started from."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return cfg


def upgrade(database_url: str) -> None:
    from backorders.settings import Settings

    cfg = _config()
    cfg.attributes["database_url"] = Settings(database_url=database_url).database_url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@lru_cache(maxsize=1)
def head() -> str:
    """The newest schema revision this code was written for."""
    found = _scripts().get_current_head()
    assert found is not None, "no migrations"
    return found


CURRENT = "SELECT version_num FROM alembic_version"
"""The database's schema revision (alembic's own table)."""


def behind(current: str | None) -> bool:
    """Whether a database at revision `current` lacks migrations this code needs: it is
    at an older revision of ours (or has none). A revision this code does not know is a
    newer release's: its schema only adds, so this code still runs on it (the old API
    processes of a rolling deploy stay ready once the new release has migrated)."""
    if current is None:
        return True
    if current == head():
        return False
    return current in _known()


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(rev.revision for rev in _scripts().walk_revisions())
