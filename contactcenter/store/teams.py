"""teams."""

from __future__ import annotations

import asyncpg

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


# how a team takes its work (routing and assignment read it)
ROUTING_SETTINGS = """
SELECT id, name, skills, strategy, sticky_wait_seconds, sticky_last_agent FROM teams WHERE id = $1
"""


async def routing_settings(
    conn: Executor, team_id: int, *, hold: bool = False
) -> asyncpg.Record | None:
    """hold: keep the team from being deleted until the transaction ends (it is about to be
    referenced)."""
    return await conn.fetchrow(ROUTING_SETTINGS + (" FOR KEY SHARE" if hold else ""), team_id)


# --- the admin API's view and writes (api/admin_teams.py, services/teams.py) ---

# a team as admins see it: its settings, its members, and how much work waits in its queue
TEAM_VIEW = """
SELECT t.id, t.name, t.is_default, t.skills, t.strategy, t.sticky_wait_seconds,
       t.sticky_last_agent, t.overflow_team_id, t.overflow_after_seconds, t.created_at,
       t.updated_at,
       array(SELECT tm.agent_id FROM team_members tm WHERE tm.team_id = t.id
             ORDER BY tm.agent_id) AS agent_ids,
       (SELECT count(*) FROM conversations c
        WHERE c.team_id = t.id AND c.waiting_since IS NOT NULL) AS waiting_count
FROM teams t
"""
LIST_VIEWS = TEAM_VIEW + "ORDER BY t.id"
ONE_VIEW = TEAM_VIEW + "WHERE t.id = $1"

SETTINGS = """
id, name, is_default, skills, strategy, sticky_wait_seconds, sticky_last_agent,
overflow_team_id, overflow_after_seconds
"""
GET_FOR_UPDATE = f"SELECT {SETTINGS} FROM teams WHERE id = $1 FOR NO KEY UPDATE"
INSERT_TEAM = """
INSERT INTO teams (name, skills, strategy, sticky_wait_seconds, sticky_last_agent,
                   overflow_team_id, overflow_after_seconds)
VALUES ($1, $2::text[], $3, $4, $5, $6, $7)
RETURNING id
"""
UPDATE_TEAM = """
UPDATE teams SET name = $2, skills = $3::text[], strategy = $4, sticky_wait_seconds = $5,
    sticky_last_agent = $6, overflow_team_id = $7, overflow_after_seconds = $8, updated_at = now()
WHERE id = $1
"""
DELETE_TEAM = "DELETE FROM teams WHERE id = $1 AND NOT is_default RETURNING id"
# every team's overflow target, all rows locked (id order): two changes that would close a
# cycle between them (A -> B while B -> A) queue, and the second sees the first's edge
LOCK_OVERFLOWS = "SELECT id, overflow_team_id FROM teams ORDER BY id FOR NO KEY UPDATE"
EXISTING = "SELECT id FROM teams WHERE id = ANY($1::bigint[])"
HAS_CONVERSATIONS = "SELECT EXISTS (SELECT 1 FROM conversations WHERE team_id = $1)"
OVERFLOWING_INTO = "SELECT id FROM teams WHERE overflow_team_id = $1 ORDER BY id"
DROP_OTHER_MEMBERS = """
DELETE FROM team_members WHERE team_id = $1 AND agent_id <> ALL($2::bigint[])
"""
ADD_MEMBERS = """
INSERT INTO team_members (team_id, agent_id) SELECT $1, unnest($2::bigint[])
ON CONFLICT DO NOTHING
"""


async def list_views(conn: Executor) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST_VIEWS))


async def view(conn: Executor, team_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(ONE_VIEW, team_id)


async def get_for_update(conn: Connection, team_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, team_id)


async def insert(
    conn: Connection,
    *,
    name: str,
    skills: list[str],
    strategy: str,
    sticky_wait_seconds: int,
    sticky_last_agent: bool,
    overflow_team_id: int | None,
    overflow_after_seconds: int | None,
) -> int:
    team_id = await conn.fetchval(
        INSERT_TEAM,
        name,
        skills,
        strategy,
        sticky_wait_seconds,
        sticky_last_agent,
        overflow_team_id,
        overflow_after_seconds,
    )
    return int(team_id)


async def update(
    conn: Connection,
    team_id: int,
    *,
    name: str,
    skills: list[str],
    strategy: str,
    sticky_wait_seconds: int,
    sticky_last_agent: bool,
    overflow_team_id: int | None,
    overflow_after_seconds: int | None,
) -> None:
    await conn.execute(
        UPDATE_TEAM,
        team_id,
        name,
        skills,
        strategy,
        sticky_wait_seconds,
        sticky_last_agent,
        overflow_team_id,
        overflow_after_seconds,
    )


async def delete(conn: Connection, team_id: int) -> bool:
    return await conn.fetchval(DELETE_TEAM, team_id) is not None


async def lock_overflows(conn: Connection) -> dict[int, int | None]:
    """Call inside a transaction: team id -> the team it overflows to."""
    return {r["id"]: r["overflow_team_id"] for r in await conn.fetch(LOCK_OVERFLOWS)}


async def existing(conn: Executor, team_ids: list[int]) -> set[int]:
    return {r["id"] for r in await conn.fetch(EXISTING, team_ids)}


async def has_conversations(conn: Executor, team_id: int) -> bool:
    return bool(await conn.fetchval(HAS_CONVERSATIONS, team_id))


async def overflowing_into(conn: Executor, team_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(OVERFLOWING_INTO, team_id)]


async def replace_members(conn: Connection, team_id: int, agent_ids: list[int]) -> None:
    """Call inside a transaction: the team's members become exactly these agents."""
    await conn.execute(DROP_OTHER_MEMBERS, team_id, agent_ids)
    await conn.execute(ADD_MEMBERS, team_id, agent_ids)
