"""The servers and processes one benchmark run shares: one embedded PostgreSQL, one
Temporal dev server (SQLite file, as `make run` uses), workers and an API as separate
processes whose memory we can read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from backorders.embedded.ports import free_port, port_in_use
from backorders.embedded.postgres import EmbeddedPostgres
from backorders.embedded.servers import LocalServers
from backorders.embedded.temporal import TemporalDevServer

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Infra:
    namespaces: list[str]
    workdir: Path | None = None
    """Data and logs; by default a temporary directory, removed again at shutdown (each
    run leaves a few hundred MB of PostgreSQL and Temporal data otherwise)."""
    keep: bool = False
    """Keep the default temporary directory, to read the processes' logs afterwards."""
    database_url: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = self.workdir or Path(tempfile.mkdtemp(prefix="bench-"))
        self.servers = LocalServers(self.dir)

    @property
    def postgres(self) -> EmbeddedPostgres | None:
        return self.servers.postgres

    @property
    def temporal(self) -> TemporalDevServer | None:
        return self.servers.temporal

    def start(self) -> None:
        self.database_url, _ = self.servers.start("bench", namespaces=self.namespaces)

    def env(self, namespace: str, **extra: str) -> dict[str, str]:
        assert self.temporal is not None
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
        env.update(
            DATABASE_URL=self.database_url,
            TEMPORAL_ADDRESS=self.temporal.address,
            TEMPORAL_NAMESPACE=namespace,
            TASK_QUEUE=f"{namespace}-queue",
            WAREHOUSE_PICK_SECONDS="0",
            WAREHOUSE_PACK_SECONDS="0",
            WAREHOUSE_CARRIER_SECONDS="0",
            LOG_LEVEL="WARNING",
            # One machine's servers, like `make run`: the default secrets are allowed, and
            # load is measured rather than rate limited.
            EMBEDDED_STACK="1",
            API_RATE_LIMIT="10000000/minute",
        )
        env.update(extra)
        return env

    def admin_key(self, namespace: str) -> str:
        """A new admin key, made the way an operator makes one: with the CLI."""
        made = subprocess.run([sys.executable, "-m", "backorders", "keys", "create", "--role",
                               "admin", "--name", f"{namespace} admin"], cwd=ROOT,
                              env=self.env(namespace), capture_output=True, text=True, check=True)
        return made.stdout.strip().splitlines()[-1]

    def spawn(self, args: list[str], env: dict[str, str],
              name: str = "") -> subprocess.Popen[bytes]:
        """A child process, its output in `proc-<n>[-name].log` in the data directory."""
        suffix = f"-{name}" if name else ""
        log = open(self.dir / f"proc-{len(self.processes)}{suffix}.log", "wb")
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def worker(self, namespace: str, *, name: str = "", **extra: str) -> subprocess.Popen[bytes]:
        return self.spawn(["worker.py"], self.env(namespace, **extra), name)

    def ceiling_worker(self, namespace: str) -> subprocess.Popen[bytes]:
        return self.spawn(["-m", "bench.ceiling"], self.env(namespace))

    def api(self, namespace: str, *, port: int = 0, name: str = "",
            **extra: str) -> tuple[subprocess.Popen[bytes], int]:
        """An API process (uvicorn) on `port` (0: a free one), once it listens."""
        proc, port = self.start_api(namespace, port=port, name=name, **extra)
        deadline = time.monotonic() + 60
        while not port_in_use(port):
            assert proc.poll() is None, "API exited"
            assert time.monotonic() < deadline, "API did not start"
            time.sleep(0.1)
        return proc, port

    def start_api(self, namespace: str, *, port: int = 0, name: str = "",
                  **extra: str) -> tuple[subprocess.Popen[bytes], int]:
        """An API process started, without waiting for it to listen (several start
        at once; a killed one comes back on its own port)."""
        port = port or free_port()
        proc = self.spawn(["-m", "uvicorn", "api.app:app_from_env", "--factory", "--host",
                           "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                          self.env(namespace, **extra), name)
        return proc, port

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def server_rss(self) -> int:
        assert self.temporal is not None and self.temporal.pid is not None
        return rss(self.temporal.pid)

    def shutdown(self) -> None:
        for proc in self.processes:
            self.stop(proc)
        self.servers.stop(postgres_mode="immediate")
        if self.workdir is None and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.workdir is None:
            print(f"data and logs kept in {self.dir}")


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


class CpuMeter:
    """CPU seconds spent by each process between start() and stop()."""

    def __init__(self, **pids: int) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._wall = 0.0
        self.wall = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        """The process, its live children, and the children it has reaped (PostgreSQL
        backends come and go with connections; without these a closed backend's time
        would vanish from the total, which could even go down)."""
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return total

    def start(self) -> None:
        self._start = {name: self._cpu(p) for name, p in self._procs.items()}
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Each process's CPU seconds per second of wall time since start()."""
        return {f"{name}_cpu_share": seconds / self.wall
                for name, seconds in self.stop_seconds().items()}

    def stop_seconds(self) -> dict[str, float]:
        """Each process's CPU seconds since start(); the wall time in `wall`."""
        self.wall = time.perf_counter() - self._wall
        return {name: self._cpu(p) - self._start[name] for name, p in self._procs.items()}
