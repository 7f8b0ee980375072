"""The allocation order of a SKU's waiting lines: the one place this rule lives.

FIFO serves lines by when their order was placed. Priority serves by customer tier
(platinum first), then larger orders, then order time. The arrival sequence breaks the
last ties so the order is total and stable."""

from __future__ import annotations

from typing import Any

from backorders.domain.customers import AllocationPolicy

_PRIORITY_KEYS = ("{a}.tier_rank", "{a}.order_value DESC")
_FIFO_KEYS = ("{a}.placed_at", "{a}.seq")


def queue_order_by(policy: AllocationPolicy | str, alias: str = "l") -> str:
    """ORDER BY keys for one SKU whose policy is known."""
    keys = _FIFO_KEYS
    if AllocationPolicy(policy) is AllocationPolicy.PRIORITY:
        keys = _PRIORITY_KEYS + _FIFO_KEYS
    return ", ".join(k.format(a=alias) for k in keys)


def queue_order_by_column(policy_column: str, alias: str = "l") -> str:
    """The same keys when the policy is a column, for queues of many SKUs at once."""
    priority = f"{policy_column} = '{AllocationPolicy.PRIORITY.value}'"
    keys = []
    for key in _PRIORITY_KEYS:
        column, _, direction = key.format(a=alias).partition(" ")
        keys.append(f"CASE WHEN {priority} THEN {column} END {direction}".rstrip())
    keys += [k.format(a=alias) for k in _FIFO_KEYS]
    return ", ".join(keys)


def ahead_of(policy: AllocationPolicy | str, alias: str = "q", target: str = "t") -> str:
    """Rows of `alias` served before the line `target` (same SKU assumed): the same keys
    as `queue_order_by`, as one row comparison, so one line's position needs no sort."""
    keys = list(_FIFO_KEYS)
    if AllocationPolicy(policy) is AllocationPolicy.PRIORITY:
        keys = list(_PRIORITY_KEYS) + keys

    def side(a: str) -> str:
        parts = []
        for key in keys:
            column, _, direction = key.format(a=a).partition(" ")
            if a == _VALUES:
                column = f":{_VALUES}_{column.split('.')[1]}"
            parts.append(f"-{column}" if direction == "DESC" else column)
        return "(" + ", ".join(parts) + ")"

    return f"{side(alias)} < {side(target)}"


def ahead_of_values(policy: AllocationPolicy | str, alias: str = "q") -> str:
    """`ahead_of` against a line's keys given as bind values (see `key_values`)."""
    return ahead_of(policy, alias, _VALUES)


_VALUES = "key"


def key_values(line: Any) -> dict[str, Any]:
    """The bind values `ahead_of_values` reads, from a row with the queue key columns."""
    return {f"{_VALUES}_{column}": getattr(line, column)
            for column in ("tier_rank", "order_value", "placed_at", "seq")}


def ahead_of_column(policy_column: str, alias: str = "q", target: str = "t") -> str:
    """`ahead_of` when the policy is a column."""
    return (f"CASE WHEN {policy_column} = '{AllocationPolicy.PRIORITY.value}' "
            f"THEN {ahead_of(AllocationPolicy.PRIORITY, alias, target)} "
            f"ELSE {ahead_of(AllocationPolicy.FIFO, alias, target)} END")
