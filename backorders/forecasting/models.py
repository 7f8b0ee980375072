"""Weekly demand forecasts per SKU, with the model for each SKU chosen by a backtest on
its own history. Pure, CPU-bound code on plain numbers: no I/O, results are frozen
dataclasses (picklable, so a process pool can return them).

For each series:

1. classify it by the Syntetos-Boylan scheme: ADI (weeks per week with demand) against
   1.32 and CV² (squared coefficient of variation of the non-zero weeks) against 0.49:
   smooth, erratic, intermittent or lumpy;
2. backtest the candidate models that suit its class (intermittent and lumpy: the
   Croston family and the temporal aggregation methods; smooth and erratic: exponential
   smoothing, a moving average and, with two years of history, the seasonal naive) with
   a rolling-origin `cross_validation`: `windows` non-overlapping windows of `horizon`
   weeks at the end of the history, each forecast from everything before it;
3. keep the model with the lowest backtest MAE and forecast the horizon with it alone
   (one StatsForecast call per chosen model, for all the series that chose it);
4. prediction intervals at 80 and 95 % are conformal: the chosen model's absolute
   backtest errors at each step ahead, applied around the forecast the way statsforecast's
   `ConformalIntervals(h=horizon, n_windows=windows)` does (its windows are the same
   ones, so the backtest's errors are reused rather than computed a second time); clipped
   at zero.

History too short for two backtest windows (`MIN_HISTORY_WEEKS` for a 12-week horizon),
or without any demand, gets a deliberately simple fallback: the mean of the observed weeks
with a Poisson-like spread. Results depend on a series' own history only, so a batch may
be split across processes without changing any SKU's forecast."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
SEASON_WEEKS = 52
MIN_TRAIN_WEEKS = 8
"""The least history the earliest backtest window is forecast from."""
MIN_WINDOWS = 2
MAX_WINDOWS = 4
DEFAULT_HORIZON = 12
MIN_HISTORY_WEEKS: int = MIN_WINDOWS * DEFAULT_HORIZON + MIN_TRAIN_WEEKS
"""32: two 12-week backtest windows plus 8 weeks to forecast the first from. Shorter (or
all-zero) history gets the fallback. For another horizon see `min_history_weeks`."""

INTERMITTENT_MODELS = ("CrostonSBA", "TSB", "ADIDA", "IMAPA")
SMOOTH_MODELS = ("AutoETS", "WindowAverage")
SEASONAL_MODEL = "SeasonalNaive"
FALLBACK = "fallback"

_Z80 = 1.2815515655446004
_Z95 = 1.959963984540054
_QUANTILES = (0.025, 0.1, 0.9, 0.975)  # lo95, lo80, hi80, hi95: statsforecast's cuts


@dataclass(frozen=True)
class DemandSeries:
    key: str
    """The SKU."""
    weekly: tuple[float, ...]
    """Units ordered per week (Monday weeks), oldest first, complete weeks only."""


@dataclass(frozen=True)
class WeekForecast:
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float
    """All >= 0, lo95 <= lo80 <= mean <= hi80 <= hi95."""


@dataclass(frozen=True)
class SkuForecast:
    key: str
    model: str
    """The statsforecast model alias used ("CrostonSBA", "TSB", "ADIDA", "IMAPA",
    "AutoETS", "WindowAverage", "SeasonalNaive") or "fallback"."""
    pattern: str
    """"smooth" | "erratic" | "intermittent" | "lumpy", or "too_short" / "no_demand"."""
    fallback: bool
    """History too short for a backtest, or without demand."""
    weeks: tuple[WeekForecast, ...]
    """`horizon` weeks, the first the week after the last history week."""
    backtest_mae: float | None
    backtest_mase: float | None
    """The backtest MAE over the in-sample naive one-step MAE (None when that is 0)."""
    error_sd: float
    """Standard deviation of one week's forecast error: the root mean square of the
    chosen model's backtest errors (for the fallback max(sqrt(mean), observed sd))."""


@dataclass(frozen=True)
class Backtest:
    """One series' backtest: every candidate's MAE and the one chosen."""

    key: str
    pattern: str
    windows: int
    mae: dict[str, float] = field(hash=False)
    chosen: str


def min_history_weeks(horizon: int = DEFAULT_HORIZON) -> int:
    """The fewest weeks of history that get a backtest (and a model) at this horizon."""
    return max(MIN_HISTORY_WEEKS, MIN_WINDOWS * horizon + MIN_TRAIN_WEEKS)


def backtest_windows(weeks: int, horizon: int = DEFAULT_HORIZON) -> int:
    """How many backtest windows a history of `weeks` gets (0: too short, fallback)."""
    if weeks < min_history_weeks(horizon):
        return 0
    return min(MAX_WINDOWS, (weeks - MIN_TRAIN_WEEKS) // horizon)


def classify(weekly: Sequence[float] | np.ndarray) -> str:
    """Syntetos-Boylan class of a demand history; "no_demand" without any demand."""
    y = _clean(weekly)
    demand = y[y > 0]
    if demand.size == 0:
        return "no_demand"
    adi = y.size / demand.size
    cv2 = float((demand.std() / demand.mean()) ** 2)
    if adi < ADI_CUTOFF:
        return "smooth" if cv2 < CV2_CUTOFF else "erratic"
    return "intermittent" if cv2 < CV2_CUTOFF else "lumpy"


def candidates(pattern: str, weeks: int, horizon: int = DEFAULT_HORIZON) -> tuple[str, ...]:
    """The models backtested for a series of this class and length."""
    if pattern in ("intermittent", "lumpy"):
        return INTERMITTENT_MODELS
    windows = backtest_windows(weeks, horizon)
    if weeks >= 2 * SEASON_WEEKS and weeks - windows * horizon >= SEASON_WEEKS:
        return (*SMOOTH_MODELS, SEASONAL_MODEL)
    return SMOOTH_MODELS


def naive_mae(weekly: Sequence[float] | np.ndarray) -> float:
    """In-sample MAE of the one-step naive forecast (last week's demand): MASE's scale."""
    y = _clean(weekly)
    return float(np.abs(np.diff(y)).mean()) if y.size > 1 else 0.0


def forecast_many(series: Sequence[DemandSeries], horizon: int = DEFAULT_HORIZON) -> list[SkuForecast]:
    """Forecast `horizon` weeks for each series. Same order as input."""
    if horizon < 1:
        raise ValueError("horizon must be at least 1 week")
    ys = [_clean(s.weekly) for s in series]
    out: list[SkuForecast | None] = [None] * len(series)
    modelled: list[int] = []
    for i, (s, y) in enumerate(zip(series, ys, strict=True)):
        if backtest_windows(y.size, horizon) and y.any():
            modelled.append(i)
        else:
            out[i] = _fallback(s.key, y, horizon)
    if modelled:
        tests = _backtest([series[i].key for i in modelled], [ys[i] for i in modelled], horizon)
        by_model: dict[str, list[int]] = {}
        for j, t in enumerate(tests):
            by_model.setdefault(t.chosen, []).append(j)
        for name, members in sorted(by_model.items()):
            means = _forecast(name, [ys[modelled[j]] for j in members], horizon)
            for row, j in enumerate(members):
                i, t = modelled[j], tests[j]
                out[i] = _modelled(series[i].key, ys[i], t, means[row])
    return [f for f in out if f is not None]


def backtest_many(series: Sequence[DemandSeries], horizon: int = DEFAULT_HORIZON) -> list[Backtest | None]:
    """The backtest `forecast_many` chooses each series' model by (None: fallback)."""
    ys = [_clean(s.weekly) for s in series]
    keep = [i for i, y in enumerate(ys) if backtest_windows(y.size, horizon) and y.any()]
    tests = _backtest([series[i].key for i in keep], [ys[i] for i in keep], horizon)
    out: list[Backtest | None] = [None] * len(series)
    for i, t in zip(keep, tests, strict=True):
        out[i] = Backtest(t.key, t.pattern, t.windows, dict(t.mae), t.chosen)
    return out


# --- internals ---------------------------------------------------------------------------


@dataclass
class _Test:
    key: str
    pattern: str
    windows: int
    mae: dict[str, float]
    chosen: str
    errors: np.ndarray
    """The chosen model's forecast minus actual, (windows, horizon)."""


def _clean(weekly: Sequence[float] | np.ndarray) -> np.ndarray:
    """Demand as floats; missing or negative weeks (net returns) count as no demand."""
    y = np.asarray(weekly, dtype=np.float64).ravel()
    return np.where(np.isfinite(y) & (y > 0), y, 0.0)


def _model(name: str) -> Any:
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoETS,
        CrostonSBA,
        HistoricAverage,
        SeasonalNaive,
        WindowAverage,
    )

    made = {
        "CrostonSBA": lambda: CrostonSBA(),
        "TSB": lambda: TSB(alpha_d=0.1, alpha_p=0.1),
        "ADIDA": lambda: ADIDA(),
        "IMAPA": lambda: IMAPA(),
        # Weekly seasonality (52) is beyond ETS's seasonal models; the seasonal naive
        # covers it when there are two years of history.
        "AutoETS": lambda: AutoETS(season_length=1),
        "WindowAverage": lambda: WindowAverage(window_size=8),
        "SeasonalNaive": lambda: SeasonalNaive(season_length=SEASON_WEEKS),
        "HistoricAverage": lambda: HistoricAverage(),
    }[name]()
    assert name == "HistoricAverage" or made.alias == name, (name, made.alias)
    return made


def _frame(ys: Sequence[np.ndarray]) -> Any:
    """Long frame, series numbered by position (so statsforecast's id order is ours)."""
    import pandas as pd

    lengths = np.fromiter((y.size for y in ys), dtype=np.int64, count=len(ys))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame({
        "unique_id": np.repeat(np.arange(len(ys), dtype=np.int64), lengths),
        "ds": np.arange(int(lengths.sum()), dtype=np.int64) - starts,
        "y": np.concatenate(ys) if ys else np.empty(0),
    })


def _statsforecast(names: Sequence[str]) -> Any:
    from statsforecast import StatsForecast

    # The historic average stands in for a model that fails on a series (none is known
    # to): one odd series must not fail a batch of thousands.
    return StatsForecast(models=[_model(n) for n in names], freq=1, n_jobs=1,
                         fallback_model=_model("HistoricAverage"), verbose=False)


@contextmanager
def _quiet() -> Iterator[None]:
    """Without statsforecast's and numpy's warnings (all-zero windows, flat series)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _backtest(keys: Sequence[str], ys: Sequence[np.ndarray], horizon: int) -> list[_Test]:
    """Rolling-origin backtest of each series' candidates, batched: one cross_validation
    per (candidate set, window count)."""
    patterns = [classify(y) for y in ys]
    windows = [backtest_windows(y.size, horizon) for y in ys]
    groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
    for i, y in enumerate(ys):
        groups.setdefault((candidates(patterns[i], y.size, horizon), windows[i]), []).append(i)
    out: list[_Test | None] = [None] * len(ys)
    for (names, w), members in sorted(groups.items()):
        with _quiet():
            cv = _statsforecast(names).cross_validation(
                df=_frame([ys[i] for i in members]), h=horizon, step_size=horizon,
                n_windows=w, refit=True)
        cv = cv.sort_values(["unique_id", "cutoff", "ds"], kind="stable")
        shape = (len(members), w, horizon)
        actual = cv["y"].to_numpy(dtype=np.float64).reshape(shape)
        errors = np.stack([cv[n].to_numpy(dtype=np.float64).reshape(shape) - actual
                           for n in names], axis=-1)  # (series, window, step, model)
        mae = np.abs(errors).mean(axis=(1, 2))
        mae = np.where(np.isfinite(mae), mae, np.inf)
        best = mae.argmin(axis=1)  # ties: the first candidate
        for row, i in enumerate(members):
            out[i] = _Test(keys[i], patterns[i], w,
                           {n: float(mae[row, k]) for k, n in enumerate(names)},
                           names[best[row]], errors[row, :, :, best[row]])
    return [t for t in out if t is not None]


def _forecast(name: str, ys: Sequence[np.ndarray], horizon: int) -> np.ndarray:
    with _quiet():
        fc = _statsforecast([name]).forecast(df=_frame(ys), h=horizon)
    fc = fc.sort_values(["unique_id", "ds"], kind="stable")
    means = fc[name].to_numpy(dtype=np.float64).reshape(len(ys), horizon)
    # A model that cannot forecast a series leaves its mean, never a hole.
    fill = np.array([y.mean() for y in ys])[:, None]
    return np.where(np.isfinite(means), means, fill)


def conformal_bands(mean: np.ndarray, abs_errors: np.ndarray) -> np.ndarray:
    """lo95, lo80, hi80, hi95 per step (4, horizon), as statsforecast's conformal
    distribution intervals: quantiles of mean -/+ each window's absolute error at that
    step; `abs_errors` is (windows, horizon)."""
    scores = np.concatenate([mean[None, :] - abs_errors, mean[None, :] + abs_errors], axis=0)
    return np.quantile(scores, _QUANTILES, axis=0)


def _weeks(mean: np.ndarray, lo95: np.ndarray, lo80: np.ndarray, hi80: np.ndarray,
           hi95: np.ndarray) -> tuple[WeekForecast, ...]:
    """Clipped at zero and put in order, whatever rounding or clipping did."""
    mean = np.maximum(mean, 0.0)
    lo80 = np.clip(lo80, 0.0, mean)
    lo95 = np.clip(lo95, 0.0, lo80)
    hi80 = np.maximum(hi80, mean)
    hi95 = np.maximum(hi95, hi80)
    return tuple(WeekForecast(m, a, b, c, d) for m, a, b, c, d in zip(
        mean.tolist(), lo80.tolist(), hi80.tolist(), lo95.tolist(), hi95.tolist(), strict=True))


def _modelled(key: str, y: np.ndarray, test: _Test, mean: np.ndarray) -> SkuForecast:
    lo95, lo80, hi80, hi95 = conformal_bands(mean, np.abs(test.errors))
    mae = test.mae[test.chosen]
    scale = naive_mae(y)
    return SkuForecast(
        key=key, model=test.chosen, pattern=test.pattern, fallback=False,
        weeks=_weeks(mean, lo95, lo80, hi80, hi95), backtest_mae=mae,
        backtest_mase=mae / scale if scale > 0 else None,
        error_sd=float(np.sqrt(np.mean(test.errors ** 2))))


def _fallback(key: str, y: np.ndarray, horizon: int) -> SkuForecast:
    """The mean of the observed weeks, with a spread no narrower than Poisson demand's."""
    if not y.any():
        zeros = np.zeros(horizon)
        return SkuForecast(key, FALLBACK, "no_demand", True,
                           _weeks(zeros, zeros, zeros, zeros, zeros), None, None, 0.0)
    mean = float(y.mean())
    sd = max(math.sqrt(mean), float(y.std(ddof=1)) if y.size > 1 else 0.0)
    m = np.full(horizon, mean)
    return SkuForecast(key, FALLBACK, "too_short", True,
                       _weeks(m, m - _Z95 * sd, m - _Z80 * sd, m + _Z80 * sd, m + _Z95 * sd),
                       None, None, sd)
