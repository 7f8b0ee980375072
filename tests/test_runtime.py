"""Process tuning for workers."""

from __future__ import annotations

import gc

from backorders import runtime


def test_a_worker_freezes_what_it_keeps_and_collects_its_young_objects_less_often():
    before = gc.get_threshold()
    try:
        runtime.tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (runtime.GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
