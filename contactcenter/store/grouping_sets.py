"""Reports computed in one statement with GROUP BY GROUPING SETS: its rows, sorted into the
report's overall block and its lists by group."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

Block = Callable[[asyncpg.Record], dict[str, Any]]


def split(
    rows: Sequence[asyncpg.Record],
    overall: int,
    groups: Mapping[str, tuple[int, tuple[str, ...]]],
    block: Block,
) -> dict[str, Any]:
    """{"overall": block, "<group>": [{<its key columns>, **block}, ...]}: each row goes where
    its `grouping` column (GROUPING(...) of the statement) says; `groups` maps a list's name
    to the GROUPING value of its rows and the columns that name each entry."""
    report: dict[str, Any] = {name: [] for name in groups}
    for row in rows:
        if row["grouping"] == overall:
            report["overall"] = block(row)
            continue
        for name, (grouping, keys) in groups.items():
            if row["grouping"] == grouping:
                report[name].append({**{key: row[key] for key in keys}, **block(row)})
    return report
