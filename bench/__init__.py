"""Benchmarks: `make bench`. Every figure comes from one run against one embedded
PostgreSQL and one Temporal dev server, so ratios between them hold on a noisy machine."""

from __future__ import annotations


def render(rows: list[tuple[str, str, str]]) -> str:
    """Rows of (label, value, note) as aligned text: labels left, values right."""
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{vwidth}}  {c}" for a, b, c in rows)
