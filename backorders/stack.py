"""`make run`: the whole stack on one machine, from wheels, with no Docker.

Starts an embedded PostgreSQL (unless DATABASE_URL is set), migrates it, starts the
Temporal dev server with its web UI and a SQLite file (unless TEMPORAL_ADDRESS is set),
then the worker and the API, and prints where each listens. Data lives under
`.data/`, so a second run finds waiting orders and workflows again. Ctrl-C stops
everything in order: API, worker, Temporal, PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backorders import logs
from backorders.db import create_engine, dispose
from backorders.domain.access import Caller
from backorders.embedded.ports import free_port, port_in_use
from backorders.embedded.servers import LocalServers, PortTaken
from backorders.schemas import NewKeyOut
from backorders.services import keys
from backorders.services.audit import Audit
from backorders.settings import Settings

log = logging.getLogger("backorders.stack")

ROOT = Path(__file__).resolve().parent.parent

MAKE_RUN = Caller(name="make run")


class Stack:
    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.absolute()
        self.env = dict(os.environ if env is None else env)
        self.servers = LocalServers(self.data_dir)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._owns_data_dir = False
        self.first_key: NewKeyOut | None = None
        """The admin key made for a database that had none, shown once in the banner."""

    @property
    def _lock_file(self) -> Path:
        return self.data_dir / "stack.json"

    def _claim(self) -> None:
        """One stack per data directory. A live one is left alone; the leftovers of one
        that was killed (kill -9, a closed terminal) are stopped before we start."""
        if self._lock_file.exists():
            try:
                previous = json.loads(self._lock_file.read_text())
            except ValueError:
                previous = {}
            if _alive(previous.get("runner")):
                raise SystemExit(
                    f"another Backorders stack (pid {previous['runner']}) is using "
                    f"{self.data_dir}; stop it first"
                )
            for name, pid in previous.get("children", {}).items():
                if _alive(pid):
                    log.warning("stopping the %s (pid %s) left by an earlier run", name, pid)
                    _terminate(pid)
        self._owns_data_dir = True
        self._record()

    def _record(self) -> None:
        if not self._owns_data_dir:
            return
        temporal = self.servers.temporal
        self._lock_file.write_text(json.dumps({
            "runner": os.getpid(),
            "children": {name: p.pid for name, p in self.children.items()}
            | ({"temporal": temporal.pid} if temporal and temporal.pid else {}),
        }))

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._claim()
        s = self.settings
        try:
            self.env["DATABASE_URL"], self.env["TEMPORAL_ADDRESS"] = self.servers.start(
                "backorders", pg_port=s.embedded_pg_port, temporal_port=s.temporal_port,
                ui_port=s.temporal_ui_port, database_url=self.env.get("DATABASE_URL"),
                temporal_address=self.env.get("TEMPORAL_ADDRESS"))
        except PortTaken as exc:
            raise SystemExit(f"{exc}; set EMBEDDED_PG_PORT") from None
        self._record()

        if port_in_use(s.api_port, s.api_host):
            raise SystemExit(f"port {s.api_port} is taken; set API_PORT")
        # The children may use the published default secrets: this stack is one machine's.
        self.env["EMBEDDED_STACK"] = "1"
        if not self.env.get("WORKER_METRICS_ADDRESS"):
            port = 9464 if not port_in_use(9464, "127.0.0.1") else free_port()
            self.env["WORKER_METRICS_ADDRESS"] = f"127.0.0.1:{port}"
        self._spawn("worker", [sys.executable, str(ROOT / "worker.py")])
        self._spawn("api", [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory",
                            "--host", s.api_host, "--port", str(s.api_port),
                            "--log-level", "warning"])
        self._wait_for_api()
        self.first_key = asyncio.run(self._first_key())

    async def _first_key(self) -> NewKeyOut | None:
        settings = self.settings.model_copy(update={
            "database_url": Settings(database_url=self.env["DATABASE_URL"]).database_url})
        engine = create_engine(settings)
        try:
            return await keys.create_first_admin(
                engine, settings, by=MAKE_RUN, audit=Audit(MAKE_RUN, "CLI", "make run"))
        finally:
            await dispose(engine)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        # Own session, so Ctrl-C reaches only this runner, which then stops children in order.
        self.children[name] = subprocess.Popen(cmd, cwd=ROOT, env=self.env,
                                               start_new_session=True)
        self._record()

    def _wait_for_api(self, timeout: float = 60.0) -> None:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_children()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API did not become healthy at {url}")

    def _check_children(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} exited with status {proc.returncode}")

    def banner(self) -> str:
        s, temporal = self.settings, self.servers.temporal
        lines = [
            "",
            "Backorders is running",
            f"  Dashboard     http://{s.api_host}:{s.api_port}/dashboard   "
            "(sign in with an ops or admin key)",
            f"  API           http://{s.api_host}:{s.api_port}   (OpenAPI docs at /docs)",
        ]
        if temporal is not None:
            lines.append(f"  Temporal UI   http://{temporal.host}:{s.temporal_ui_port}"
                         f"   (namespace {s.temporal_namespace})")
        data = self.settings.data_dir
        lines.append(f"  Temporal      {self.env['TEMPORAL_ADDRESS']}"
                     + (f"   (dev server, state in {data / 'temporal.db'})" if temporal else ""))
        database = self.env["DATABASE_URL"]
        lines.append(f"  PostgreSQL    {database}"
                     + (f"   (embedded, data in {data / 'pg'})" if self.servers.postgres else ""))
        lines.append(f"  Worker        pid {self.children['worker'].pid}, "
                     f"task queue {s.task_queue!r}")
        worker_metrics = self.env.get("WORKER_METRICS_ADDRESS")
        lines.append(f"  Metrics       http://{s.api_host}:{s.api_port}/metrics   (ops key or "
                     "METRICS_TOKEN)" + (f"; worker http://{worker_metrics}/metrics"
                                        if worker_metrics else ""))
        make_key = ".venv/bin/python -m backorders keys create --role ROLE --name NAME"
        if self.first_key is not None:
            lines += ["", "First admin key (shown only this once; store it now):",
                      f"  {self.first_key.key}",
                      "  curl -H 'Authorization: Bearer <key>' "
                      f"http://{s.api_host}:{s.api_port}/admin/keys"]
        lines += ["", "API keys: every call but /health needs `Authorization: Bearer <key>`.",
                  f"  more keys     {make_key} [--channel CHANNEL]",
                  "                (roles: channel, erp, ops, admin; or POST /admin/keys)",
                  "  list, revoke  .venv/bin/python -m backorders keys list | revoke ID"]
        lines += ["", "Press Ctrl-C to stop.", ""]
        return "\n".join(lines)

    def watch(self) -> None:
        while True:
            self._check_children()
            time.sleep(0.5)

    def stop(self) -> None:
        for name in ("api", "worker"):
            proc = self.children.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                proc.kill()
                proc.wait()
        self.servers.stop()
        if self._owns_data_dir:
            self._lock_file.unlink(missing_ok=True)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, timeout: float = 20.0) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    settings = Settings()
    logs.setup(settings.log_level, settings.log_format)
    os.chdir(ROOT)
    stack = Stack(settings)
    # Installed explicitly: a shell that backgrounds us may have set SIGINT to ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        stack.watch()
    except KeyboardInterrupt:
        print("\nstopping Backorders...", flush=True)
    except Exception as exc:
        log.error("%s", exc)
        code = 1
    finally:
        stack.stop()
        print("stopped.", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
