"""How honest the expected dates are: a year of simulated suppliers, each with its own
delay distribution, their purchase orders with promised dates, and waiting lines covered
by them. Each line is dated the day its purchase order is placed, two ways:

- today's rule: the promised date plus handling (`expected_date`; likely = latest = it);
- honest dates: the promise shifted by the supplier's delay quantiles
  (`backorders.domain.delays`, the functions production uses), estimated from the
  supplier's receipts *before* that day only (no peeking at the future).

Scored against the day each line's units actually arrive (plus handling): the share of
lines delivered by their latest date (goal >= 90% with the p90), and the mean absolute
error of the likely date, in days. No database, no Temporal: `python -m bench.eta_honesty`
(or `python -m bench --only eta-honesty`, which also starts the bench's infrastructure)."""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from backorders.domain.delays import DelayQuantiles, honest_dates, supplier_quantiles
from backorders.settings import Settings
from bench import render

SEED = 21
DAYS = 365
HANDLING_DAYS = Settings.model_fields["eta_handling_days"].default
LIKELY_Q = Settings.model_fields["eta_likely_quantile"].default
LATEST_Q = Settings.model_fields["eta_latest_quantile"].default
WARM_UP_DAYS = 60
"""Lines dated before this are also scored apart: their suppliers have little history."""
START = date(2026, 1, 1)

Delay = Callable[[random.Random, int], int]
"""A supplier's delay in days for a purchase order placed on day `t` of the year."""


def _punctual(rng: random.Random, t: int) -> int:
    return rng.choice([-1, 0, 0, 0, 0, 1, 1, 2])


def _week_late(rng: random.Random, t: int) -> int:
    return round(rng.gauss(7, 2))


def _erratic(rng: random.Random, t: int) -> int:
    return rng.randint(0, 3) if rng.random() < 0.7 else rng.randint(8, 25)


def _early(rng: random.Random, t: int) -> int:
    return rng.choice([-4, -3, -2, -2, -1, 0])


def _slipping(rng: random.Random, t: int) -> int:
    """Gets worse through the year: a week's drift that history only learns late."""
    return round(rng.gauss(1 + 9 * t / DAYS, 2))


SUPPLIERS: dict[str, Delay] = {
    "punctual": _punctual, "week-late": _week_late, "erratic": _erratic, "early": _early,
    "slipping": _slipping,
}


@dataclass
class _Line:
    supplier: str
    dated_on: int
    arrives: date
    expected: date
    likely: date
    latest: date


@dataclass
class _Score:
    lines: int = 0
    by_latest: int = 0
    errors_today: list[int] = field(default_factory=list)
    errors_likely: list[int] = field(default_factory=list)
    by_expected: int = 0
    padding: list[int] = field(default_factory=list)
    """Days the latest date lies beyond the likely one: what the honesty costs in words."""

    def add(self, line: _Line) -> None:
        self.lines += 1
        self.by_latest += line.arrives <= line.latest
        self.by_expected += line.arrives <= line.expected
        self.errors_today.append(abs((line.arrives - line.expected).days))
        self.errors_likely.append(abs((line.arrives - line.likely).days))
        self.padding.append((line.latest - line.likely).days)

    def figures(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "today_by_date_share": self.by_expected / self.lines,
            "honest_by_latest_share": self.by_latest / self.lines,
            "today_mae_days": statistics.fmean(self.errors_today),
            "honest_likely_mae_days": statistics.fmean(self.errors_likely),
            "latest_beyond_likely_days": statistics.fmean(self.padding),
        }


def simulate(seed: int = SEED, likely_q: float = LIKELY_Q,
             latest_q: float = LATEST_Q) -> list[_Line]:
    rng = random.Random(seed)
    orders: list[tuple[int, str, date, date]] = []  # placed on, supplier, promised, arrives
    for supplier, delay in SUPPLIERS.items():
        t = rng.randint(0, 3)
        while t < DAYS:
            promised = START + timedelta(days=t + rng.randint(10, 30))
            arrives = promised + timedelta(days=delay(rng, t))
            orders.append((t, supplier, promised, arrives))
            t += rng.randint(2, 5)
    orders.sort(key=lambda o: o[0])
    # Receipts as the ledger would have them: supplier, received, delay against promise.
    receipts = sorted(((s, arrives, (arrives - promised).days)
                       for _, s, promised, arrives in orders), key=lambda r: r[1])
    handling = HANDLING_DAYS
    lines: list[_Line] = []
    for placed_on, supplier, promised, arrives in orders:
        today = START + timedelta(days=placed_on)
        past = {supplier: [d for s, received, d in receipts
                           if s == supplier and received < today]}
        quantiles: DelayQuantiles | None = supplier_quantiles(
            past, likely_q, latest_q).get(supplier)
        dates = honest_dates(promised, promised, quantiles, handling)
        for _ in range(rng.randint(1, 4)):  # the waiting lines this purchase order covers
            lines.append(_Line(supplier, placed_on, arrives + timedelta(days=handling),
                               dates.expected, dates.likely, dates.latest))
    return lines


def bench_eta_honesty(seed: int = SEED, likely_q: float = LIKELY_Q,
                      latest_q: float = LATEST_Q) -> dict[str, Any]:
    lines = simulate(seed, likely_q, latest_q)
    overall, warm, per_supplier = _Score(), _Score(), {s: _Score() for s in SUPPLIERS}
    for line in lines:
        overall.add(line)
        per_supplier[line.supplier].add(line)
        if line.dated_on >= WARM_UP_DAYS:
            warm.add(line)
    return {"seed": seed, "days": DAYS, "likely_quantile": likely_q,
            "latest_quantile": latest_q, "handling_days": HANDLING_DAYS,
            "overall": overall.figures(), "after_warm_up": warm.figures(),
            "suppliers": {s: score.figures() for s, score in per_supplier.items()}}


def table_rows(results: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Rows for `bench.__main__.table`: label, value, note."""
    if not results:
        return []
    rows: list[tuple[str, str, str]] = []
    q = f"p{round(results['likely_quantile'] * 100)}/p{round(results['latest_quantile'] * 100)}"
    for name, label in (("overall", "all lines"), ("after_warm_up",
                                                   f"dated after day {WARM_UP_DAYS}")):
        f = results[name]
        rows.append((f"eta-honesty {label}: by latest date, today / honest",
                     f"{f['today_by_date_share']:.0%} / {f['honest_by_latest_share']:.0%}",
                     f"{f['lines']} lines, {q}; goal >= 90%"))
        rows.append((f"eta-honesty {label}: likely-date MAE, today / honest",
                     f"{f['today_mae_days']:.1f} / {f['honest_likely_mae_days']:.1f} d",
                     f"latest {f['latest_beyond_likely_days']:.1f} d beyond likely on average"))
    for supplier, f in results["suppliers"].items():
        rows.append((f"eta-honesty {supplier}: by latest, MAE today / honest",
                     f"{f['today_by_date_share']:.0%} / {f['honest_by_latest_share']:.0%}",
                     f"MAE {f['today_mae_days']:.1f} / {f['honest_likely_mae_days']:.1f} d, "
                     f"{f['lines']} lines"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.eta_honesty", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--likely-quantile", type=float, default=LIKELY_Q)
    parser.add_argument("--latest-quantile", type=float, default=LATEST_Q)
    args = parser.parse_args()
    results = bench_eta_honesty(args.seed, args.likely_quantile, args.latest_quantile)
    print(f"seed {results['seed']}, {results['days']} days, handling "
          f"{results['handling_days']} d")
    print(render(table_rows(results)))


if __name__ == "__main__":
    main()
