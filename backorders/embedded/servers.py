"""The servers a local stack needs, started and stopped in one order: an embedded
PostgreSQL with its database migrated, then the Temporal dev server. `make run`
(`backorders.stack`) and the benchmark and fault tests (`bench.infra`) both use it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backorders import migrate
from backorders.embedded.ports import free_port, port_in_use
from backorders.embedded.postgres import EmbeddedPostgres
from backorders.embedded.temporal import TemporalDevServer

log = logging.getLogger(__name__)


class PortTaken(RuntimeError):
    """PostgreSQL's port is held by something other than our own server."""


@dataclass
class LocalServers:
    data_dir: Path
    """PostgreSQL's data in `pg/` (its log beside it), Temporal's `temporal.db` and
    `temporal.log`."""
    postgres: EmbeddedPostgres | None = field(default=None, init=False)
    """None until started, and when the database is someone else's."""
    temporal: TemporalDevServer | None = field(default=None, init=False)
    """None until started, and when the Temporal server is someone else's."""

    def start(self, database: str, *, pg_port: int = 0, temporal_port: int = 0,
              ui_port: int | None = None, namespaces: Sequence[str] = (),
              database_url: str | None = None,
              temporal_address: str | None = None) -> tuple[str, str]:
        """Start, in order: PostgreSQL on `pg_port` with `database` in it, unless
        `database_url` names one already; the schema migrated, either way; the Temporal
        dev server on `temporal_port` (its web UI on `ui_port`, None for none) with
        `namespaces`, unless `temporal_address` names one. A port of 0 is any free one.
        Returns the database URL and the Temporal address to use. Raises PortTaken when
        `pg_port` is held by anything but a server of ours left over from a killed run."""
        if database_url is None:
            database_url = self._start_postgres(pg_port or free_port(), database)
        migrate.upgrade(database_url)
        log.info("database schema is up to date")
        if temporal_address is None:
            self.temporal = TemporalDevServer(
                port=temporal_port or free_port(), ui_port=ui_port,
                db_file=self.data_dir / "temporal.db", log_file=self.data_dir / "temporal.log",
                namespaces=list(namespaces),
            )
            self.temporal.start()
            temporal_address = self.temporal.address
        return database_url, temporal_address

    def _start_postgres(self, port: int, database: str) -> str:
        postgres = EmbeddedPostgres(self.data_dir / "pg", port=port)
        if port_in_use(port) and not postgres.is_running():
            raise PortTaken(f"port {port} is taken")
        self.postgres = postgres
        postgres.start()
        postgres.ensure_database(database)
        return postgres.url_for(database)

    def stop(self, postgres_mode: str = "fast") -> None:
        """Temporal, then PostgreSQL (`pg_ctl stop -m postgres_mode`): whatever was started."""
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            self.postgres.stop(mode=postgres_mode)
