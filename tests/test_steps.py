"""The dispatch step table (`domain/steps.py`) both the ledger and the workflow read."""

from __future__ import annotations

from backorders.domain.lifecycle import IN_PROGRESS, AllocationStatus
from backorders.domain.steps import STEPS, dispatched_message

S = AllocationStatus


def test_each_step_follows_only_the_one_before_it():
    assert {s: step.comes_after for s, step in STEPS.items()} == {
        S.PICKING: S.ALLOCATED, S.PACKED: S.PICKING, S.AWAITING_SHIPMENT: S.PACKED}
    assert list(STEPS) == list(IN_PROGRESS[1:])


def test_the_ledger_and_the_timeline_word_each_step():
    assert [STEPS[s].ledger_message(2) for s in STEPS] == [
        "2 unit(s) being picked", "2 unit(s) packed",
        "2 unit(s) labelled, awaiting carrier collection"]
    assert [STEPS[s].done_message(2) for s in STEPS] == [
        "2 unit(s) picked", "2 unit(s) packed",
        "2 unit(s) labelled, awaiting carrier collection"]
    assert dispatched_message(2, "SIM1") == "2 unit(s) dispatched, tracking SIM1"
