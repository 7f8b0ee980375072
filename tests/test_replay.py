"""Determinism guard: histories recorded from earlier versions of the line workflow must
replay on the current code. A change that would break running workflows fails here;
such a change needs `workflow.patched`. Re-record with `make histories` only when the
recorded behaviour itself is meant to change for new workflows, and keep the old files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.scenarios import SCENARIOS
from workflows.line import LineWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_recorded_for_every_scenario():
    recorded = {p.stem.split("--")[0] for p in RECORDED}
    assert {s.__name__ for s in SCENARIOS} <= recorded


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays_on_current_code(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[LineWorkflow]).replay_workflow(history)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_fresh_history_replays(api, worker, db, scenario):
    """Catches non-determinism within the current code, e.g. iteration over a set."""
    recorded = await scenario(api, worker, db)
    for workflow_id in recorded.values():
        history = await worker.client.get_workflow_handle(workflow_id).fetch_history()
        await Replayer(workflows=[LineWorkflow]).replay_workflow(history)
    if os.environ.get("RECORD_HISTORIES"):
        tag = os.environ["RECORD_HISTORIES"]
        for name, workflow_id in recorded.items():
            history = await worker.client.get_workflow_handle(workflow_id).fetch_history()
            (HISTORIES / f"{name}--{tag}.json").write_text(history.to_json())
