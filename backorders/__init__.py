"""Backorders: split orders, wait durably for stock, allocate fairly, dispatch."""
