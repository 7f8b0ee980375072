"""Honest expected dates (F21): beside the purchase order's own date, each waiting line
gets a likely and a latest date from its supplier's delivery record (receipts against
promised dates), shown in the API, the workflow's state and the customer's messages."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from backorders.domain.delays import (
    DelayQuantiles,
    honest_dates,
    quantile_days,
    shifted,
    supplier_quantiles,
)
from backorders.notify.templates import longdate
from backorders.services.forecasts import today_utc
from backorders.services.supplier_delays import delay_samples
from backorders.settings import Settings
from tests.support import eventually, make_product, place, receive, rows
from tests.test_supply import LEAD, put_po
from tests.test_supply import day as day_iso
from workflows.line import LineWorkflow

pytestmark = pytest.mark.usefixtures("one_utc_day")
# Days late of each past receipt from "lateco": usually a week, once early, once two weeks.
LATECO_DELAYS = [-3, 5, 6, 7, 7, 7, 7, 8, 9, 14]
P50, P90 = 7, 14  # ranks ceil(q * 11): the 6th and 10th of the ten, sorted


def day(offset: int) -> date:
    return today_utc() + timedelta(days=offset)


async def lateco_history(api: Any) -> None:
    """Ten purchase orders promised `delay` days before today, each received today."""
    await make_product(api, "HIST-1")
    for i, delay in enumerate(LATECO_DELAYS):
        await put_po(api, f"PO-H{i}", "lateco", [("HIST-1", 1, -delay)])
        await receive(api, f"GR-H{i}", "HIST-1", 1, purchase_order=f"PO-H{i}")


async def dates(api: Any, sku: str) -> dict[str, tuple[str | None, str | None, str | None]]:
    r = await api.get("/backorders", params={"sku": sku})
    assert r.status_code == 200, r.text
    return {b["order_number"]: (b["expected_date"], b["likely_date"], b["latest_date"])
            for b in r.json()["items"]}


# --- The pure rules -----------------------------------------------------------------------


def test_quantile_days_is_the_least_rank_that_covers_the_next_delivery() -> None:
    assert quantile_days([], 0.5) == 0
    assert quantile_days(LATECO_DELAYS, 0.5) == P50
    assert quantile_days(LATECO_DELAYS, 0.9) == P90
    assert quantile_days(list(range(1, 25)), 0.28) == 7  # 0.28 * 25 is 7.000000000000001
    assert quantile_days([-2, -1], 0.5) == -1  # rank ceil(1.5) = 2
    assert quantile_days(list(range(1, 9)), 0.9) == 8  # too few for a p90: the largest
    assert quantile_days(list(range(1, 19)), 0.9) == 18  # still the largest: 17.1 rounds up
    assert quantile_days(list(range(1, 20)), 0.9) == 18
    assert quantile_days(list(range(1, 100)), 0.9) == 90  # 90 of 100 cover 0.9 exactly
    with pytest.raises(ValueError):
        quantile_days([1], 1.5)


def test_a_supplier_without_samples_has_no_quantiles() -> None:
    assert supplier_quantiles({"a": [3, 3], "b": []}, 0.5, 0.9) == {"a": DelayQuantiles(3, 3)}


def test_a_purchase_order_already_redated_past_its_promise_is_not_shifted_again() -> None:
    promised = date(2026, 3, 1)
    assert shifted(promised, promised, 7) == date(2026, 3, 8)
    assert shifted(date(2026, 3, 20), promised, 7) == date(2026, 3, 20)
    assert shifted(promised, promised, -3) == promised  # early history: never before its date


def test_honest_dates_without_history_are_the_expected_date() -> None:
    d = date(2026, 3, 1)
    assert honest_dates(d, d, None, 2) == (
        honest_dates(d, d, DelayQuantiles(0, 0), 2))
    got = honest_dates(d, d, DelayQuantiles(7, 9), 2)
    assert (got.expected, got.likely, got.latest) == (
        date(2026, 3, 3), date(2026, 3, 10), date(2026, 3, 12))


@pytest.mark.parametrize(("likely", "latest"), [(0.0, 0.9), (0.5, 1.0), (0.95, 0.9)])
def test_eta_quantiles_must_lie_strictly_between_0_and_1_and_in_order(
        likely: float, latest: float) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, eta_likely_quantile=likely, eta_latest_quantile=latest)


# --- The ledger ------------------------------------------------------------------------------


async def test_delay_samples_are_days_between_promise_and_receipt_per_supplier(api, db) -> None:
    await lateco_history(api)
    await make_product(api, "HIST-2")
    await put_po(api, "PO-G", "goodco", [("HIST-2", 1, 0)])
    await receive(api, "GR-G", "HIST-2", 1, purchase_order="PO-G")
    async with db.connect() as conn:
        everyone = await delay_samples(conn)
        only = await delay_samples(conn, ["goodco", "nobody"])
        none = await delay_samples(conn, [])
    assert sorted(everyone["lateco"]) == sorted(LATECO_DELAYS)
    assert everyone["goodco"] == [0]
    assert only == {"goodco": [0]}
    assert none == {}


async def test_a_late_supplier_gives_its_lines_a_likely_and_a_latest_date_everywhere(
        api, worker, db) -> None:
    await lateco_history(api)
    await make_product(api, "HON-1")
    order = await place(api, "H-1", [("HON-1", 2)], customer="hope")
    await put_po(api, "PO-NEXT", "lateco", [("HON-1", 5, 10)])  # promised in ten days

    assert await dates(api, "HON-1") == {
        "H-1": (day_iso(10 + LEAD), day_iso(10 + P50 + LEAD), day_iso(10 + P90 + LEAD))}
    line = (await api.get(f"/orders/{order['id']}")).json()["lines"][0]
    assert (line["expected_date"], line["likely_date"], line["latest_date"]) == (
        day_iso(10 + LEAD), day_iso(10 + P50 + LEAD), day_iso(10 + P90 + LEAD))

    state = await eventually(
        lambda: worker.client.get_workflow_handle_for(LineWorkflow.run, line["workflow_id"])
        .query(LineWorkflow.state), lambda s: s.latest_date is not None,
        what="the workflow to hear the honest dates")
    assert (state.expected_date, state.likely_date, state.latest_date) == (
        day_iso(10 + LEAD), day_iso(10 + P50 + LEAD), day_iso(10 + P90 + LEAD))

    # A date appeared: the customer hears the likely date and the latest one.
    told = await eventually(lambda: rows(
        db, "SELECT body_text FROM notifications WHERE customer_id = 'hope' "
            "AND event = 'status_update' AND body_text IS NOT NULL"),
        what="the customer told of the new date")
    text = told[0].body_text
    assert (f"Expected delivery: {longdate(day(10 + P50 + LEAD))}, at the latest "
            f"{longdate(day(10 + P90 + LEAD))}.") in text

    # The supplier re-dates the purchase order beyond its usual delay: the new date
    # already carries the delay, so it is not shifted again.
    await put_po(api, "PO-NEXT", "lateco", [("HON-1", 5, 25)])
    assert await dates(api, "HON-1") == {"H-1": (day_iso(25 + LEAD),) * 3}
    state = await eventually(
        lambda: worker.client.get_workflow_handle_for(LineWorkflow.run, line["workflow_id"])
        .query(LineWorkflow.state), lambda s: s.expected_date == day_iso(25 + LEAD),
        what="the workflow to hear the re-dated purchase order")
    assert state.likely_date == state.latest_date == day_iso(25 + LEAD)


async def test_a_supplier_without_history_keeps_likely_and_latest_at_the_expected_date(
        api, worker, db) -> None:
    await lateco_history(api)  # someone else's record does not count
    await make_product(api, "HON-2")
    order = await place(api, "N-1", [("HON-2", 1)], customer="nia")
    await put_po(api, "PO-NEW", "newco", [("HON-2", 3, 4)])
    assert await dates(api, "HON-2") == {"N-1": (day_iso(4 + LEAD),) * 3}
    line = (await api.get(f"/orders/{order['id']}")).json()["lines"][0]
    assert line["likely_date"] == line["latest_date"] == line["expected_date"] == day_iso(4 + LEAD)
    told = await eventually(lambda: rows(
        db, "SELECT body_text FROM notifications WHERE customer_id = 'nia' "
            "AND event = 'status_update' AND body_text IS NOT NULL"),
        what="the customer told of the new date")
    assert f"Expected delivery: {longdate(day(4 + LEAD))}." in told[0].body_text
    assert "at the latest" not in told[0].body_text


async def test_a_new_receipt_revises_the_likely_date_of_lines_already_dated(
        api, worker, db) -> None:
    await make_product(api, "HON-3")
    await make_product(api, "HIST-3")
    order = await place(api, "R-1", [("HON-3", 1)], customer="rae")
    await put_po(api, "PO-R", "slowco", [("HON-3", 2, 6)])
    assert await dates(api, "HON-3") == {"R-1": (day_iso(6 + LEAD),) * 3}

    # slowco's first delivery (of another SKU) comes four days late: the receipt alone
    # re-dates every SKU slowco still has to deliver.
    await put_po(api, "PO-R0", "slowco", [("HIST-3", 1, -4)])
    await receive(api, "GR-R0", "HIST-3", 1, purchase_order="PO-R0")
    got = await dates(api, "HON-3")
    assert got["R-1"] == (day_iso(6 + LEAD), day_iso(6 + 4 + LEAD), day_iso(6 + 4 + LEAD))
    line = (await api.get(f"/orders/{order['id']}")).json()["lines"][0]
    state = await eventually(
        lambda: worker.client.get_workflow_handle_for(LineWorkflow.run, line["workflow_id"])
        .query(LineWorkflow.state), lambda s: s.likely_date == day_iso(6 + 4 + LEAD),
        what="the workflow to hear the revised likely date")
    assert state.expected_date == day_iso(6 + LEAD)
