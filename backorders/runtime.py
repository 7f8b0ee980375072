"""Process tuning shared by every worker process, the benchmark's ceiling worker too."""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between young collections (CPython's default is 700). A worker keeps
thousands of cached workflows alive, each with its sandboxed state, so full collections
walk hundreds of thousands of objects; collecting the young generation less often
makes full collections rarer too, and short-lived garbage is freed by reference counting
anyway."""


def tune_gc() -> None:
    """Call once the process has imported and built what it keeps for its lifetime:
    those objects are moved out of the collector's sight (`gc.freeze`), so no collection
    walks them again."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
