"""Running the models off the event loop: in a process pool of its own beside a worker or
API process (`FORECAST_PROCESSES`), or a thread when that is 0. Model fitting is CPU
work; on the loop it would stall every workflow task and request in the process."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from backorders.forecasting import models

_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(processes: int) -> ProcessPoolExecutor:
    pool = _POOLS.get(processes)
    if pool is None:
        # spawn, not fork: the parent runs an event loop and Temporal's core threads.
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
        _POOLS[processes] = pool
    return pool


async def forecast_many(series: Sequence[models.DemandSeries], horizon: int,
                        processes: int) -> list[models.SkuForecast]:
    if not series:
        return []
    if processes <= 0:
        return await asyncio.to_thread(models.forecast_many, list(series), horizon)
    pool = _pool(processes)
    try:
        return await asyncio.get_running_loop().run_in_executor(
            pool, models.forecast_many, list(series), horizon)
    except BrokenProcessPool:
        # A model process died (killed, out of memory): the next call starts a fresh
        # pool, and the caller's retry (an activity's) runs it there.
        _POOLS.pop(processes, None)
        raise


def shutdown() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()
