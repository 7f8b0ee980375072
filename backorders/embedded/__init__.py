"""Local servers from PyPI wheels, for `make run` and the tests; production uses real ones."""
