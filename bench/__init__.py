"""Benchmarks: `make bench`. Every figure comes from one run against one embedded
PostgreSQL and one Temporal dev server, so ratios between them hold on a noisy machine."""
