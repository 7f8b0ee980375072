"""Determinism guard: histories recorded from earlier versions of every workflow (those a
worker runs, `worker.WORKFLOWS`) must
replay on the current code. A change that would break running workflows fails here;
such a change needs `workflow.patched`. Re-record with `make histories` only when the
recorded behaviour itself is meant to change for new workflows, and keep the old files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from backorders.temporal import DATA_CONVERTER
from tests.scenarios import SCENARIOS
from worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_recorded_for_every_scenario():
    recorded = {p.stem.split("--")[0] for p in RECORDED}
    expected = {s.__name__ for s in SCENARIOS} - {"quiet_hours_and_daily_digest"}
    assert expected | {"quiet_hours_line", "daily_digest"} <= recorded
    types = {WorkflowHistory.from_json(p.stem, p.read_text()).events[0]
             .workflow_execution_started_event_attributes.workflow_type.name for p in RECORDED}
    assert types == {w.__temporal_workflow_definition.name for w in WORKFLOWS}  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays_on_current_code(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER).replay_workflow(history)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_fresh_history_replays(api, worker, db, temporal_env, scenario):
    """Catches non-determinism within the current code, e.g. iteration over a set."""
    recorded = await scenario(api, worker, db, temporal_env)
    for workflow_id in recorded.values():
        history = await worker.client.get_workflow_handle(workflow_id).fetch_history()
        await Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("RECORD_HISTORIES"):
        tag = os.environ["RECORD_HISTORIES"]
        for name, workflow_id in recorded.items():
            history = await worker.client.get_workflow_handle(workflow_id).fetch_history()
            (HISTORIES / f"{name}--{tag}.json").write_text(history.to_json())
