"""The status rules the database and the workflow share."""

from __future__ import annotations

from itertools import combinations

import pytest

from backorders.domain.lifecycle import (
    IN_PROGRESS,
    AllocationStatus,
    LineStatus,
    line_status,
    search_status,
    status_after_allocation,
)

ALREADY_IN_FLIGHT = [list(c) for n in range(len(IN_PROGRESS) + 1)
                     for c in combinations(IN_PROGRESS, n)]


@pytest.mark.parametrize("in_flight", ALREADY_IN_FLIGHT, ids=lambda c: "+".join(c) or "none")
@pytest.mark.parametrize("waiting_after", [0, 1, 5])
@pytest.mark.parametrize("shipped", [0, 3])
def test_the_status_allocation_writes_is_what_the_full_rule_gives(in_flight, waiting_after,
                                                                  shipped):
    full = line_status(waiting=waiting_after, shipped=shipped,
                       in_progress=[*in_flight, AllocationStatus.ALLOCATED])
    assert status_after_allocation(still_waiting=waiting_after > 0) is full


def test_a_line_is_as_far_as_its_slowest_quantity():
    assert line_status(waiting=0, shipped=1, in_progress=["packed", "picking"]) is LineStatus.PICKING
    assert line_status(waiting=0, shipped=1, in_progress=[]) is LineStatus.DISPATCHED
    assert line_status(waiting=0, shipped=0, in_progress=[]) is LineStatus.CANCELLED
    assert line_status(waiting=2, shipped=1, in_progress=["packed"]) is LineStatus.BACKORDERED


@pytest.mark.parametrize("status", list(LineStatus))
def test_search_status_shows_the_warehouse_steps_as_allocated(status):
    in_warehouse = {LineStatus.PICKING, LineStatus.PACKED, LineStatus.AWAITING_SHIPMENT}
    expected = LineStatus.ALLOCATED if status in in_warehouse else status
    assert search_status(status) is expected
