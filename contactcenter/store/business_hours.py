"""business_hours: the calendars "inside business hours" is judged by."""

from __future__ import annotations

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.business_hours import Calendar, parse_weekly, weekly_json

COLUMNS = """
id, name, timezone, weekly, country, subdivision, closed_dates, open_dates, is_default,
created_at, updated_at
"""

LIST = f"SELECT {COLUMNS} FROM business_hours ORDER BY id"
GET = f"SELECT {COLUMNS} FROM business_hours WHERE id = $1"
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM business_hours WHERE id = $1 FOR NO KEY UPDATE"
DEFAULT = f"SELECT {COLUMNS} FROM business_hours WHERE is_default"

INSERT = f"""
INSERT INTO business_hours (name, timezone, weekly, country, subdivision, closed_dates,
                            open_dates, is_default)
VALUES ($1, $2, $3, $4, $5, $6::date[], $7::date[], $8)
RETURNING {COLUMNS}
"""
# the service validates the whole calendar (what was stored merged with the change) and
# writes all of it back
UPDATE = f"""
UPDATE business_hours SET name = $2, timezone = $3, weekly = $4, country = $5, subdivision = $6,
    closed_dates = $7::date[], open_dates = $8::date[], updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM business_hours WHERE id = $1 RETURNING id"

# the default changes hands: the current one is locked first, so two admins making two
# calendars the default at once queue instead of both passing the unique index's check
LOCK_DEFAULT = "SELECT id FROM business_hours WHERE is_default FOR NO KEY UPDATE"
UNSET_DEFAULT = """
UPDATE business_hours SET is_default = false, updated_at = now() WHERE is_default AND id <> $1
"""
SET_DEFAULT = f"""
UPDATE business_hours SET is_default = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}
"""


def calendar_from_row(row: asyncpg.Record) -> Calendar:
    return Calendar(
        id=row["id"],
        name=row["name"],
        timezone=row["timezone"],
        weekly=parse_weekly(row["weekly"]),
        country=row["country"],
        subdivision=row["subdivision"],
        closed_dates=frozenset(row["closed_dates"]),
        open_dates=frozenset(row["open_dates"]),
    )


async def list_all(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST))


async def get(conn: Executor, calendar_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, calendar_id)


async def get_for_update(conn: Connection, calendar_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, calendar_id)


async def load(conn: Executor, calendar_id: int | None) -> Calendar | None:
    """The calendar with this id, or with None the default calendar; None when there is none."""
    row = await (conn.fetchrow(DEFAULT) if calendar_id is None else conn.fetchrow(GET, calendar_id))
    return None if row is None else calendar_from_row(row)


async def insert(conn: Connection, calendar: Calendar, *, is_default: bool) -> asyncpg.Record:
    row = await conn.fetchrow(
        INSERT,
        calendar.name,
        calendar.timezone,
        weekly_json(calendar.weekly),
        calendar.country,
        calendar.subdivision,
        sorted(calendar.closed_dates),
        sorted(calendar.open_dates),
        is_default,
    )
    assert row is not None
    return row


async def update(conn: Connection, calendar: Calendar) -> asyncpg.Record | None:
    return await conn.fetchrow(
        UPDATE,
        calendar.id,
        calendar.name,
        calendar.timezone,
        weekly_json(calendar.weekly),
        calendar.country,
        calendar.subdivision,
        sorted(calendar.closed_dates),
        sorted(calendar.open_dates),
    )


async def delete(conn: Connection, calendar_id: int) -> bool:
    return await conn.fetchval(DELETE, calendar_id) is not None


async def step_down_default(conn: Connection, except_id: int) -> None:
    """Call inside a transaction, before making `except_id` (or a new calendar) the default;
    -1 for a calendar not inserted yet."""
    await conn.execute(LOCK_DEFAULT)
    await conn.execute(UNSET_DEFAULT, except_id)


async def set_default(conn: Connection, calendar_id: int, is_default: bool) -> asyncpg.Record:
    row = await conn.fetchrow(SET_DEFAULT, calendar_id, is_default)
    assert row is not None
    return row
