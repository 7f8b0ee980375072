"""Workflow definitions. Deterministic code only: all I/O happens in activities."""
