"""`make run` end to end: real processes, the Temporal dev server with its SQLite file and
an embedded PostgreSQL. A waiting line survives a full stop and start of the stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from backorders import search_attributes
from backorders.embedded.ports import free_port, port_in_use
from backorders.embedded.temporal import TemporalDevServer
from backorders.settings import Settings
from backorders.stack import Stack

pytestmark = pytest.mark.slow


def _stack(data_dir, ports: dict[str, int]) -> Stack:
    settings = Settings(_env_file=None, data_dir=data_dir, api_port=ports["api"],
                        temporal_port=ports["temporal"], temporal_ui_port=ports["ui"],
                        embedded_pg_port=ports["pg"])
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEST_DATABASE_URL")}
    env.update(API_PORT=str(ports["api"]), WAREHOUSE_PICK_SECONDS="0",
               WAREHOUSE_PACK_SECONDS="0", WAREHOUSE_CARRIER_SECONDS="0")
    return Stack(settings, env)


def _wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_waiting_line_survives_stopping_and_starting_the_stack(tmp_path):
    ports = {name: free_port() for name in ("api", "temporal", "ui", "pg")}
    api = httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=10)

    first = _stack(tmp_path / "data", ports)
    try:
        first.start()
        banner = first.banner()
        assert f"http://127.0.0.1:{ports['api']}" in banner
        assert f"http://127.0.0.1:{ports['api']}/dashboard" in banner
        assert f"http://127.0.0.1:{ports['ui']}" in banner
        assert port_in_use(ports["ui"])  # the Temporal web UI is up
        assert first.first_key is not None and first.first_key.key in banner
        assert "keys create --role ROLE --name NAME" in banner
        assert api.put("/products/KEEP", json={}).status_code == 401
        api.headers["Authorization"] = f"Bearer {first.first_key.key}"
        assert api.put("/products/KEEP", json={}).status_code == 201
        r = api.post("/orders", json={
            "channel": "web", "order_number": "K-1", "customer": {"id": "c"},
            "lines": [{"sku": "KEEP", "quantity": 2, "unit_price": "3.00"}]})
        assert r.status_code == 201
        order = r.json()
    finally:
        first.stop()
    assert not port_in_use(ports["api"]) and not port_in_use(ports["temporal"])
    assert not port_in_use(ports["pg"])

    second = _stack(tmp_path / "data", ports)
    try:
        second.start()
        assert second.first_key is None  # the first run's key is still the one
        assert "First admin key" not in second.banner()
        assert api.get(f"/orders/{order['id']}").json()["status"] == "backordered"
        # The CLI makes keys against the running stack's database.
        made = subprocess.run(
            [sys.executable, "-m", "backorders", "keys", "create", "--role", "erp", "--name", "ERP"],
            env=second.env, capture_output=True, text=True, check=True)
        erp = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
        r = api.post("/receipts", json={"receipt_id": "K-R", "sku": "KEEP", "quantity": 2},
                     headers=erp)
        assert r.status_code == 201 and r.json()["allocated_quantity"] == 2
        done = _wait_for(lambda: api.get(f"/orders/{order['id']}").json()["status"] == "completed")
        assert done
        line = api.get(f"/orders/{order['id']}").json()["lines"][0]
        assert line["shipped_quantity"] == 2
    finally:
        second.stop()


def test_the_dev_server_serves_search_attributes_from_its_cache_as_production_does(tmp_path):
    """The CLI's dev server reads search attributes from its database on every use unless
    told otherwise; ours registers them as it starts, so the cache can serve them.
    (The test above runs line workflows, which carry them, on a server started so.)"""
    server = TemporalDevServer(port=free_port(), db_file=tmp_path / "t.db", namespaces=["a"])
    cmd = server.command()
    flags = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--dynamic-config-value"]
    assert "system.forceSearchAttributesCacheRefreshOnRead=false" in flags
    registered = {cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--search-attribute"}
    assert registered == {f"{key.name}=Keyword" for key in search_attributes.ALL}
