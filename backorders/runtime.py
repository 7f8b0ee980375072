"""Process tuning shared by every worker process, the benchmark's ceiling worker too."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import temporalio.bridge.worker as _bridge_worker
from temporalio.converter import DataConverter
from temporalio.converter._extstore import StorageOperationMetrics

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


def skip_idle_payload_passes() -> None:
    """Skip the SDK's payload passes over each workflow activation and completion when
    there is nothing for them to do: no payload codec and no external storage.

    temporalio 1.35 visits every payload of every activation three times and of every
    completion three times, to run a codec and external storage, whether or not either
    is configured; each visit also works out the payload's serialization context inside
    the workflow sandbox. With neither configured every pass returns the payloads
    unchanged, yet they took about a fifth of a line worker's Python time (py-spy,
    `make bench` lifecycle). The SDK has the test for this (`DataConverter.
    _decode_payload_has_effect`, "temporary shortcircuit detection") but does not use
    it on this path. We ask that same test, so a later SDK that drops it (its passes
    having more to do) fails every test here rather than have them skipped. With a
    codec or storage configured, the passes run as before.

    Idempotent; call before a worker starts."""
    if getattr(_bridge_worker.decode_activation, "_skips_idle_passes", False):
        return
    _bridge_worker.decode_activation = _unless_idle(_bridge_worker.decode_activation)
    _bridge_worker.encode_completion = _unless_idle(_bridge_worker.encode_completion)


def _unless_idle(passes: Callable[..., Awaitable[StorageOperationMetrics]],
                 ) -> Callable[..., Awaitable[StorageOperationMetrics]]:
    """`passes` (over an activation, or a completion), run only when the converter has
    a codec or external storage for them to apply: the SDK's own test for that."""
    async def wrapper(message: Any, data_converter: DataConverter,
                      *args: Any, **kwargs: Any) -> StorageOperationMetrics:
        if not data_converter._decode_payload_has_effect:
            return StorageOperationMetrics()
        return await passes(message, data_converter, *args, **kwargs)

    wrapper._skips_idle_passes = True  # type: ignore[attr-defined]
    return wrapper
