"""The chaos soak (`make soak`) in brief: `python -m bench.soak` for a short run that
still injects every kind of fault once (a worker and an API SIGKILLed and restarted,
PostgreSQL crashed and restarted, the Temporal dev server SIGKILLed and restarted), so
its fault scheduler, its recovery timing and its report keep working, and the
invariants hold after each kind of fault under the mixed load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.infra import ROOT
from bench.soak import KINDS

pytestmark = [pytest.mark.faults, pytest.mark.soak, pytest.mark.timeout(360)]


def test_a_short_soak_recovers_from_every_kind_of_fault_and_reports_it(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "20", "--seed", "26", "--min-faults",
         str(len(KINDS)), "--min-gap", "1", "--max-gap", "3", "--min-down", "1", "--max-down", "2",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=340)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["violations"] == []
    assert set(report["faults_by_kind"]) == set(KINDS)  # every kind, each at least once
    for fault in report["faults"]:
        assert fault["recovered"] is not None, fault
    assert report["load"]["orders_accepted"] == report["load"]["orders_sent"] > 0
    assert report["clients"]["gave_up"] == 0
    for kind in KINDS:
        assert f"{kind:<8}" in run.stdout  # each fault is in the printed report
    assert "invariants OK" in run.stdout
