"""What ops' machines see: /metrics (route templates, the ledger's gauges, allocation and
alert timings) behind a key or the metrics token, liveness and readiness probes, request
ids in and out and on every log record, JSON logs, and a worker's own metrics port."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.app import create_app
from backorders import logs, metrics
from backorders.domain.access import Role
from backorders.embedded.ports import free_port, port_in_use
from backorders.temporal import connect, tls_config
from tests.support import (
    api_client,
    bearer,
    eventually,
    make_product,
    new_key,
    order_body,
    place,
    receive,
    rows,
    scalar,
    start_worker,
    wait_settled,
)

TOKEN = "metrics-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


@pytest.fixture
def metered(settings):
    return settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})


@pytest.fixture
async def metered_api(temporal_env, db, metered, worker):
    app = create_app(metered, engine=db, client=temporal_env.client)
    async with api_client(app, db, metered) as client:
        yield client


@pytest.fixture
def caplog_ids(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog whose records carry the bound ids, as the production handler's do (the
    handler lives for the session: the filter comes off again after the test)."""
    ids = logs._WithIds()
    caplog.handler.addFilter(ids)
    try:
        yield caplog
    finally:
        caplog.handler.removeFilter(ids)


async def scrape(api: httpx.AsyncClient) -> dict:
    r = await api.get("/metrics", headers=bearer(TOKEN))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_need_the_token_or_an_ops_key(metered_api, db, metered):
    assert (await metered_api.get("/metrics", headers={"Authorization": ""})).status_code == 401
    assert (await metered_api.get("/metrics", headers=bearer("not-the-token"))).status_code == 401
    erp = await new_key(db, metered, Role.ERP)
    assert (await metered_api.get("/metrics", headers=bearer(erp))).status_code == 403
    ops = await new_key(db, metered, Role.OPS)
    assert (await metered_api.get("/metrics", headers=bearer(ops))).status_code == 200
    assert (await metered_api.get("/metrics", headers=bearer(TOKEN))).status_code == 200


async def test_the_token_opens_metrics_and_nothing_else(metered_api):
    from api.access import RULES

    keyed = [name.partition(" ")[2] for name, rule in RULES.items()
             if name.startswith("GET ") and "{" not in name and not rule.public
             and not rule.session and name != "GET /metrics"]
    assert len(keyed) > 10
    for path in keyed:
        r = await metered_api.get(path, headers=bearer(TOKEN))
        assert r.status_code == 401, (path, r.status_code)


async def test_requests_are_counted_by_route_template_method_and_status(metered_api):
    before = await scrape(metered_api)
    order_id = uuid.uuid4()
    assert (await metered_api.get(f"/orders/{order_id}")).status_code == 404
    assert (await metered_api.get("/no/such/path")).status_code == 404
    after = await scrape(metered_api)

    def grew(route: str, status: str) -> float:
        name = "backorders_http_requests_total"
        labels = {"route": route, "method": "GET", "status": status}
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert grew("/orders/{order_id}", "404") == 1
    assert grew("unmatched", "404") == 1
    assert not any(str(order_id) in str(key) for key in after)
    assert value(after, "backorders_http_request_duration_seconds_count",
                 route="/orders/{order_id}", method="GET") >= 1


async def test_gauges_show_what_waits_per_sku_and_in_total(metered_api, db):
    await make_product(metered_api, "G-1")
    await make_product(metered_api, "G-2")
    await place(metered_api, "M-1", [("G-1", 5)])
    await place(metered_api, "M-2", [("G-1", 2), ("G-2", 1)])
    found = await scrape(metered_api)
    assert value(found, "backorders_waiting_units") == 8
    assert value(found, "backorders_waiting_lines") == 3
    assert value(found, "backorders_sku_waiting_units", sku="G-1") == 7
    assert value(found, "backorders_sku_waiting_lines", sku="G-1") == 2
    assert value(found, "backorders_sku_waiting_units", sku="G-2") == 1
    for name in ("backorders_outbox_pending", "backorders_outbox_oldest_pending_seconds",
                 "backorders_outbox_dead", "backorders_intake_backlog", "backorders_intake_dead"):
        assert value(found, name) is not None, name


async def test_the_waiting_gauges_name_only_the_top_skus(temporal_env, db, metered, worker):
    few = metered.model_copy(update={"metrics_top_skus": 1})
    app = create_app(few, engine=db, client=temporal_env.client)
    async with api_client(app, db, few) as api:
        for sku, quantity in (("T-1", 1), ("T-2", 3)):
            await make_product(api, sku)
            await place(api, f"T-{sku}", [(sku, quantity)])
        found = await scrape(api)
    assert value(found, "backorders_sku_waiting_units", sku="T-2") == 3
    assert value(found, "backorders_sku_waiting_units", sku="T-1") is None
    assert value(found, "backorders_waiting_units") == 4


async def test_an_allocation_and_the_alert_it_causes_are_timed(metered_api, db):
    await make_product(metered_api, "AL-1")
    await place(metered_api, "AL-ORDER", [("AL-1", 2)])
    before = await scrape(metered_api)
    await receive(metered_api, "R-AL-1", "AL-1", 2)
    await eventually(lambda: scalar(db, "SELECT count(*) FROM notifications WHERE "
                                        "event = 'allocated' AND status = 'sent'"))
    after = await scrape(metered_api)

    def grew(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert grew("backorders_allocation_seconds_count") == 1
    assert grew("backorders_time_to_alert_seconds_count") == 1
    assert grew("backorders_notifications_sent_total", channel="email", outcome="sent") >= 1
    assert value(after, "backorders_notifications", channel="email", status="sent") >= 1


@asynccontextmanager
async def schema_at(db, version: str):
    """The database claims schema revision `version` for the block."""
    current = await scalar(db, "SELECT version_num FROM alembic_version")
    async with db.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    try:
        yield
    finally:
        async with db.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"),
                               {"v": current})


async def test_liveness_asks_nothing_and_readiness_checks_database_temporal_and_schema(
        metered_api, db):
    live = await metered_api.get("/health/live", headers={"Authorization": ""})
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await metered_api.get("/health/ready", headers={"Authorization": ""})
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "database": "ok", "migrations": "ok",
                            "temporal": "ok"}
    async with schema_at(db, "0001"):
        behind = await metered_api.get("/health/ready")
    assert behind.status_code == 503 and behind.headers["retry-after"]
    assert behind.json()["migrations"].startswith("at 0001, expected ")


async def test_a_newer_releases_schema_keeps_this_release_ready(metered_api, db):
    """During a rolling deploy the new release migrates first; the old processes still
    serve on the schema it added to."""
    async with schema_at(db, "9999_next"):
        ready = await metered_api.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["migrations"] == "ok"


async def test_a_request_id_is_kept_or_made_answered_and_on_every_log_record(
        metered_api, caplog_ids):
    caplog = caplog_ids
    caplog.set_level(logging.INFO)
    given = await metered_api.get("/orders", headers={"X-Request-Id": "abc-123"})
    made = await metered_api.get("/orders")
    odd = await metered_api.get("/orders", headers={"X-Request-Id": "bad id <script>"})
    await make_product(metered_api, "RID-1")
    r = await metered_api.post("/orders", headers={"X-Request-Id": "order-req-1"},
                               json=order_body("RID-ORDER", [("RID-1", 1)]))
    assert r.status_code == 201, r.text
    assert given.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    tagged = [r for r in caplog.records if getattr(r, "request_id", None) == "order-req-1"]
    assert tagged, "the order's log records carry the request id"
    accepted = [r for r in tagged if "accepted" in r.getMessage()]
    assert accepted and accepted[0].order_id == r.json()["id"]


async def test_a_lines_activities_log_under_its_order_and_the_receipt_and_request_behind_them(
        api, db, caplog_ids):
    caplog = caplog_ids
    caplog.set_level(logging.INFO)
    await make_product(api, "RID-ACT")
    r = await api.post("/orders", headers={"X-Request-Id": "order-req-act"},
                       json=order_body("RID-ACT-1", [("RID-ACT", 2)]))
    assert r.status_code == 201, r.text
    order_id, line_id = r.json()["id"], r.json()["lines"][0]["id"]
    r = await api.post("/receipts", headers={"X-Request-Id": "receipt-req-act"},
                       json={"receipt_id": "R-ACT", "sku": "RID-ACT", "quantity": 2})
    assert r.status_code == 201, r.text
    await wait_settled(db)
    # The outbox row keeps its writer's request id; its delivery hands it to the line.
    contexts = {row.kind: row.trace for row in await rows(
        db, "SELECT kind, trace FROM outbox WHERE line_id = :l", l=line_id)}
    assert contexts["line.start"] == {logs.REQUEST_ID_KEY: "order-req-act"}
    assert contexts["line.allocated"] == {logs.REQUEST_ID_KEY: "receipt-req-act"}
    shipped = [rec for rec in caplog.records if rec.name == "temporalio.activity"
               and "dispatched, tracking" in rec.getMessage()]
    assert shipped, "the ship activity logged"
    assert {(rec.request_id, rec.order_id, rec.receipt_id, rec.line_id)
            for rec in shipped} == {("receipt-req-act", order_id, "R-ACT", line_id)}
    told = [rec for rec in caplog.records if rec.name == "backorders.notify.service"
            and "(backordered) sent" in rec.getMessage()]
    assert told, "the backordered message went out"
    assert {(rec.request_id, rec.order_id, rec.line_id) for rec in told} == {
        ("order-req-act", order_id, line_id)}


def test_json_logs_carry_the_bound_ids_as_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs._WithIds())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.bind(request_id="r-1", order_id="o-1"), logs.bind(line_id="l-1"):
            logger.warning("line %s waits", "l-1", extra={"receipt_id": "rc-1"})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "line l-1 waits" and first["level"] == "WARNING"
    assert (first["request_id"], first["order_id"], first["line_id"], first["receipt_id"]) == \
        ("r-1", "o-1", "l-1", "rc-1")
    assert first["logger"] == "tests.json"
    assert first["time"].endswith("+00:00")  # ISO 8601 in UTC
    assert "request_id" not in second


def test_text_logs_end_with_the_ids():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with logs.bind(request_id="r-9"):
        logs._WithIds().filter(record)
    assert logs.formatter("text").format(record).endswith("hello [request_id=r-9]")


async def test_a_worker_serves_the_sdks_metrics_and_ours_on_its_own_port(
        temporal_env, db, settings):
    """A real client with the metrics runtime, on its own port: the SDK's task metrics and
    our notification counter and alert timing come from the same endpoint."""
    previous = metrics.recorder()
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics.worker_runtime(address)
    try:
        client = await connect(settings.model_copy(update={
            "temporal_address": temporal_env.client.service_client.config.target_host}),
            runtime=runtime)
        own = settings.model_copy(update={"task_queue": settings.task_queue + "-m"})
        async with start_worker(client, db, own):
            app = create_app(own, engine=db, client=client)
            async with api_client(app, db, own) as metered:
                await make_product(metered, "WM-1")
                await place(metered, "WM-ORDER", [("WM-1", 1)])
                await receive(metered, "R-WM-1", "WM-1", 1)
                await eventually(lambda: scalar(
                    db, "SELECT count(*) FROM notifications WHERE event = 'allocated' "
                        "AND status = 'sent'"))

                async def exported() -> dict | None:
                    async with httpx.AsyncClient() as http:
                        text = (await http.get(f"http://{address}/metrics")).text
                    found = samples(text)
                    names = {name for name, _ in found}
                    if "backorders_time_to_alert_seconds_count" in names:
                        return found
                    return None

                found = await eventually(exported)
    finally:
        metrics.install(previous)
    names = {name for name, _ in found}
    assert any(n.startswith("temporal_workflow_task_schedule_to_start_latency") for n in names)
    assert any(n.startswith("temporal_activity_execution_latency") for n in names)
    assert "backorders_allocation_seconds_count" in names
    sent = [v for (name, labels), v in found.items()
            if name == "backorders_notifications_sent_total" and ("outcome", "sent") in labels]
    assert sum(sent) >= 1


def test_temporal_tls_settings_build_the_sdks_tls_config(settings, tmp_path):
    assert tls_config(settings) is False
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    for f, body in ((ca, b"CA"), (cert, b"CERT"), (key, b"KEY")):
        f.write_bytes(body)
    mtls = tls_config(settings.model_copy(update={
        "temporal_tls_ca": ca, "temporal_tls_cert": cert, "temporal_tls_key": key,
        "temporal_tls_server_name": "temporal.internal"}))
    assert (mtls.server_root_ca_cert, mtls.client_cert, mtls.client_private_key, mtls.domain) \
        == (b"CA", b"CERT", b"KEY", "temporal.internal")
    cloud = tls_config(settings.model_copy(update={"temporal_api_key": SecretStr("k")}))
    assert cloud.server_root_ca_cert is None and cloud.client_cert is None
    with pytest.raises(ValueError, match="TEMPORAL_TLS_CA: cannot read"):
        tls_config(settings.model_copy(update={"temporal_tls_ca": tmp_path / "missing.pem"}))


def test_pool_sizes_per_role_and_database_tls(settings):
    tuned = settings.model_copy(update={"db_pool_size": 7, "api_db_pool_size": 30,
                                        "database_sslmode": "verify-full"})
    assert (tuned.pool_size("api"), tuned.pool_size("worker")) == (30, 7)
    assert tuned.database_tls == {"sslmode": "verify-full"}


async def test_several_api_processes_report_their_requests_together(on_server, db, tmp_path):
    """uvicorn with two worker processes and PROMETHEUS_MULTIPROC_DIR: /metrics, whichever
    process answers it, counts the requests both served."""
    port = free_port()
    shared = tmp_path / "prometheus"
    shared.mkdir()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=log,
        env={**os.environ, "DATABASE_URL": on_server.libpq_url,
             "TEMPORAL_ADDRESS": on_server.temporal_address, "EMBEDDED_STACK": "1",
             "METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(shared)})
    try:
        await eventually(lambda: asyncio.to_thread(port_in_use, port, "127.0.0.1"),
                         what="the API to listen", timeout=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await eventually(lambda: http.get("/health/live"),
                             lambda r: r.status_code == 200, what="both processes up")
            sent = 40
            for _ in range(sent):  # new connections, so both processes take some
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as one:
                    assert (await one.get("/health/live")).status_code == 200
            pids = {p.name for p in shared.iterdir()}
            found = samples((await http.get("/metrics", headers=bearer(TOKEN))).text)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert len({name.rsplit("_", 1)[-1] for name in pids}) >= 2, pids
    counted = value(found, "backorders_http_requests_total",
                    route="/health/live", method="GET", status="200")
    assert counted is not None and counted >= sent + 1
    # Each process's own file: both served some, and /metrics gave their sum.
    shares = [_live_count(path, tmp_path) for path in sorted(shared.glob("counter_*.db"))]
    assert sum(1 for n in shares if n > 0) >= 2, shares
    assert sum(shares) == counted


def _live_count(counter_file: Path, tmp_path: Path) -> float:
    from prometheus_client import CollectorRegistry, multiprocess

    alone = tmp_path / f"one-{counter_file.stem}"
    alone.mkdir()
    (alone / counter_file.name).write_bytes(counter_file.read_bytes())
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(alone))
    found = samples(generate_latest(registry).decode())
    return value(found, "backorders_http_requests_total", route="/health/live", method="GET",
                 status="200") or 0.0


async def test_an_unexpected_failure_is_logged_and_answered_under_the_request_id(caplog_ids):
    from api.observe import Observe

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    caplog = caplog_ids
    caplog.set_level(logging.ERROR)
    transport = httpx.ASGITransport(app=Observe(broken), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        r = await http.get("/anything", headers={"X-Request-Id": "req-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    assert r.json()["error"] == "internal_error" and "req-500" in r.json()["message"]
    failed = [rec for rec in caplog.records if rec.exc_info]
    assert failed and failed[0].request_id == "req-500"



async def test_metrics_still_answer_when_the_ledger_cannot_be_read(metered_api):
    services = metered_api._transport.app.state.services  # type: ignore[attr-defined]

    async def unavailable():
        raise OSError("database down")

    real = services.gauges.get
    services.gauges.get = unavailable
    try:
        found = await scrape(metered_api)
    finally:
        services.gauges.get = real
    assert value(found, "backorders_gauges_up") == 0
    assert value(found, "backorders_waiting_units") is None
    assert any(name == "backorders_http_requests_total" for name, _ in found)
    assert value(await scrape(metered_api), "backorders_gauges_up") == 1


async def test_wrong_tokens_for_metrics_are_rate_limited(temporal_env, db, metered, worker):
    strict = metered.model_copy(update={"api_rate_limit": "3/minute"})
    app = create_app(strict, engine=db, client=temporal_env.client)
    async with api_client(app, db, strict) as api:
        answers = [(await api.get("/metrics", headers=bearer(f"guess-{i}"))).status_code
                   for i in range(5)]
    assert answers[:3] == [401, 401, 401] and answers[3:] == [429, 429]


async def test_health_and_the_gauges_report_the_same_backlog(metered_api, db):
    async with db.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO outbox (kind, line_id, dead_at) VALUES ('line.cancelled', :id, now())"),
            {"id": uuid.uuid4()})
        await conn.execute(sa.text(
            "INSERT INTO outbox (kind, line_id, available_at, created_at) "
            "VALUES ('line.cancelled', :id, now() + interval '1 hour', now() - interval '90 seconds')"),
            {"id": uuid.uuid4()})
    health = (await metered_api.get("/health")).json()
    assert health["outbox"]["dead"] == 1 and health["outbox"]["pending"] == 1
    assert health["outbox"]["oldest_pending_seconds"] >= 90 and health["intake"]["dead"] == 0
    found = await scrape(metered_api)
    assert value(found, "backorders_outbox_dead") == 1
    assert value(found, "backorders_outbox_pending") == 1
    assert value(found, "backorders_outbox_oldest_pending_seconds") >= 90
