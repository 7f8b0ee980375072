"""The forecasting benchmark's scoring (`bench/forecast.py`): MASE and its baselines
against figures worked out by hand, and the scenario end to end on a few series, so a
wrong figure in the benchmark's table fails here rather than misleading a reader."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from backorders.forecasting import models
from bench import forecast as bench


def test_a_perfect_forecast_scores_zero():
    history = np.array([[3.0, 5.0, 4.0, 6.0]])
    actual = np.array([[7.0, 2.0, 9.0]])
    assert bench.mase(actual.copy(), actual, history)[0] == 0.0


def test_the_naive_baseline_matches_the_hand_computation():
    # In-sample one-step naive errors |3-1|, |2-3|, |5-2| = 2, 1, 3: scale 2.
    # Naive forecast 5, 5 against 4, 7: errors 1, 2, MAE 1.5; MASE 1.5 / 2.
    history = np.array([[1.0, 3.0, 2.0, 5.0]])
    actual = np.array([[4.0, 7.0]])
    forecast = bench.naive(history, 2)
    assert forecast.tolist() == [[5.0, 5.0]]
    assert bench.mase(forecast, actual, history)[0] == pytest.approx(0.75)


def test_the_seasonal_naive_baseline_repeats_the_weeks_a_year_back():
    history = np.arange(60, dtype=np.float64)[None, :]
    assert bench.seasonal_naive(history, 3).tolist() == [[8.0, 9.0, 10.0]]
    # Against a year-on-year rise of 52 a week: every week 52 out, the scale 1.
    actual = np.array([[60.0, 61.0, 62.0]])
    assert bench.mase(bench.seasonal_naive(history, 3), actual, history)[0] == pytest.approx(52.0)


def test_a_history_that_never_changes_has_no_scale_and_is_not_scored():
    assert math.isnan(bench.mase(np.ones((1, 2)), np.ones((1, 2)), np.full((1, 40), 4.0))[0])
    history = np.vstack([np.full(40, 4.0), np.tile([2.0, 6.0], 20)])
    actual = np.array([[4.0, 4.0], [2.0, 6.0]])
    figures = bench.score(history, actual)
    assert (figures["series"], figures["scored"]) == (2, 1)
    # The second series alone: scale 4, naive 6, 6 against 2, 6 -> MAE 2, MASE 0.5.
    assert figures["mase"]["naive"] == pytest.approx(0.5)


def test_the_shapes_are_what_they_say_and_the_same_every_time():
    for shape, pattern in (("smooth", "smooth"), ("seasonal", "smooth"),
                           ("intermittent", "intermittent"), ("lumpy", "lumpy")):
        y = bench.generate(shape, 6)
        assert y.shape == (6, bench.HISTORY_WEEKS + bench.HOLDOUT_WEEKS)
        assert np.array_equal(y, bench.generate(shape, 6))
        assert (y >= 0).all() and (y == np.round(y)).all()
        patterns = [models.classify(row[:bench.HISTORY_WEEKS]) for row in y]
        assert patterns.count(pattern) >= 5, (shape, patterns)


def test_a_shapes_figures_are_the_means_of_each_series_mase():
    y = bench.generate("intermittent", 4)
    history, actual = y[:, :-12], y[:, -12:]
    figures = bench.score(history, actual)

    fc = models.forecast_many([models.DemandSeries(str(i), tuple(r)) for i, r in enumerate(history)],
                              12)

    def by_hand(forecasts: list[list[float]]) -> float:
        out = []
        for f, a, h in zip(forecasts, actual, history, strict=True):
            scale = sum(abs(h[t] - h[t - 1]) for t in range(1, len(h))) / (len(h) - 1)
            out.append(sum(abs(fi - ai) for fi, ai in zip(f, a, strict=True)) / len(a) / scale)
        return sum(out) / len(out)

    assert figures["mase"]["chosen"] == pytest.approx(by_hand([[w.mean for w in f.weeks] for f in fc]))
    assert figures["mase"]["naive"] == pytest.approx(by_hand([[h[-1]] * 12 for h in history]))
    assert figures["mase"]["seasonal_naive"] == pytest.approx(
        by_hand([list(h[-52:-40]) for h in history]))
    assert sum(figures["models"].values()) == 4
    assert figures["models"] == dict(Counter(f.model for f in fc))


async def test_the_scenario_runs_small_and_its_table_says_what_it_found():
    results = await bench.bench_forecast(per_shape=3, sizes=(), compare=0)
    assert set(results["shapes"]) == set(bench.SHAPES)
    assert results["goal_below_naive_every_shape"] == all(
        f["mase"]["chosen"] < f["mase"]["naive"] for f in results["shapes"].values())
    rows = bench.table_rows(results)
    assert [r[0] for r in rows][:4] == [
        f"forecast {s}: MASE chosen / naive / seasonal naive" for s in bench.SHAPES]
    assert rows[-1][:2] == ("forecast public retail dataset", "none")


async def test_a_catalogue_is_timed_through_the_runner_in_the_workflows_batches():
    series = bench.catalogue(8)
    assert [models.classify(s.weekly) for s in series[:4]] == [
        "smooth", "smooth", "intermittent", "lumpy"]
    seconds = await bench.time_catalogue(series, processes=0, batch_size=3, parallel=2)
    assert seconds > 0
