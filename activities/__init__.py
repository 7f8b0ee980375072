"""Activities: every piece of I/O the line workflows need."""
