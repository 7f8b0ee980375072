"""The allocation order of a SKU's waiting lines: the one place this rule lives.

FIFO serves lines by when their order was placed. Priority serves by customer tier
(platinum first), then larger orders, then order time. The arrival sequence breaks the
last ties so the order is total and stable."""

from __future__ import annotations

from typing import Any

from backorders.domain.customers import AllocationPolicy

_PRIORITY_KEYS = ("{a}tier_rank", "{a}order_value DESC")
_FIFO_KEYS = ("{a}placed_at", "{a}seq")
_BIND = ":key_"
"""The prefix that turns a key column into the bind value `ahead_of_values` compares to."""


def _keys(policy: AllocationPolicy | str) -> tuple[str, ...]:
    if AllocationPolicy(policy) is AllocationPolicy.PRIORITY:
        return _PRIORITY_KEYS + _FIFO_KEYS
    return _FIFO_KEYS


def queue_order_by(policy: AllocationPolicy | str, alias: str = "l") -> str:
    """ORDER BY keys for one SKU whose policy is known."""
    return ", ".join(k.format(a=f"{alias}.") for k in _keys(policy))


def queue_order_by_column(policy_column: str, alias: str = "l") -> str:
    """The same keys when the policy is a column, for queues of many SKUs at once."""
    priority = f"{policy_column} = '{AllocationPolicy.PRIORITY.value}'"
    keys = []
    for key in _PRIORITY_KEYS:
        column, _, direction = key.format(a=f"{alias}.").partition(" ")
        keys.append(f"CASE WHEN {priority} THEN {column} END {direction}".rstrip())
    keys += [k.format(a=f"{alias}.") for k in _FIFO_KEYS]
    return ", ".join(keys)


def _row(keys: tuple[str, ...], prefix: str) -> str:
    """The keys as one row value, descending keys negated so `<` means served first."""
    parts = []
    for key in keys:
        column, _, direction = key.format(a=prefix).partition(" ")
        parts.append(f"-{column}" if direction == "DESC" else column)
    return "(" + ", ".join(parts) + ")"


def ahead_of(policy: AllocationPolicy | str, alias: str = "q", target: str = "t") -> str:
    """Rows of `alias` served before the line `target` (same SKU assumed): the same keys
    as `queue_order_by`, as one row comparison, so one line's position needs no sort."""
    keys = _keys(policy)
    return f"{_row(keys, f'{alias}.')} < {_row(keys, f'{target}.')}"


def ahead_of_values(policy: AllocationPolicy | str, alias: str = "q") -> str:
    """`ahead_of` against a line's keys given as bind values (see `key_values`)."""
    keys = _keys(policy)
    return f"{_row(keys, f'{alias}.')} < {_row(keys, _BIND)}"


def key_values(line: Any) -> dict[str, Any]:
    """The bind values `ahead_of_values` reads, from a row with the queue key columns."""
    columns = [k.format(a="").split()[0] for k in _PRIORITY_KEYS + _FIFO_KEYS]
    return {f"{_BIND[1:]}{column}": getattr(line, column) for column in columns}


def ahead_of_column(policy_column: str, alias: str = "q", target: str = "t") -> str:
    """`ahead_of` when the policy is a column."""
    return (f"CASE WHEN {policy_column} = '{AllocationPolicy.PRIORITY.value}' "
            f"THEN {ahead_of(AllocationPolicy.PRIORITY, alias, target)} "
            f"ELSE {ahead_of(AllocationPolicy.FIFO, alias, target)} END")
