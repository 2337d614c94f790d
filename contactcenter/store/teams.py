"""teams."""

from __future__ import annotations

from contactcenter.db import Connection, Executor

DEFAULT_TEAM = "SELECT id FROM teams WHERE is_default"
BY_NAME = "SELECT id FROM teams WHERE name = $1"
CREATE = """
INSERT INTO teams (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING id
"""

UNSET_DEFAULT = "UPDATE teams SET is_default = false WHERE is_default AND id <> $1"
SET_DEFAULT = "UPDATE teams SET is_default = true WHERE id = $1"


async def default_team_id(conn: Executor) -> int | None:
    value = await conn.fetchval(DEFAULT_TEAM)
    return None if value is None else int(value)


async def id_by_name(conn: Executor, name: str) -> int | None:
    value = await conn.fetchval(BY_NAME, name)
    return None if value is None else int(value)


async def ensure(conn: Connection, name: str) -> int:
    return int(await conn.fetchval(CREATE, name))


async def make_default(conn: Connection, team_id: int) -> None:
    """Call inside a transaction: the old default steps down first (teams_one_default)."""
    await conn.execute(UNSET_DEFAULT, team_id)
    await conn.execute(SET_DEFAULT, team_id)
