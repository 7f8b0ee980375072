"""Pure business rules: no I/O, safe to import from workflow code."""
