"""agents, their teams, presence and loads."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.assignment import AgentLoad
from contactcenter.store.conversations import ACTIVE

COLUMNS = "id, name, email, role, presence, capacity, created_at"

INSERT = f"""
INSERT INTO agents (name, email, role, token_hash, capacity)
VALUES ($1, $2, $3, $4, $5)
RETURNING {COLUMNS}
"""

SET_TOKEN_BY_EMAIL = f"""
UPDATE agents SET token_hash = $2 WHERE lower(email) = lower($1) RETURNING {COLUMNS}
"""

BY_TOKEN_HASH = f"""
SELECT {COLUMNS}, array(SELECT team_id FROM team_members tm WHERE tm.agent_id = agents.id
                        ORDER BY team_id) AS team_ids
FROM agents WHERE token_hash = $1
"""

JOIN_TEAM = """
INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""

SET_PRESENCE = """
UPDATE agents SET presence = $2, presence_changed_at = $3 WHERE id = $1
"""

TEAM_IDS = "SELECT team_id FROM team_members WHERE agent_id = $1 ORDER BY team_id"

# who could take the team's work: its online members, and the online agents that conversations
# at the head of its queue prefer (an account manager need not be in the team), locked in id
# order (fills of two teams sharing an agent take the locks in the same order, so they queue
# instead of deadlocking)
LOCK_CANDIDATES = """
SELECT a.id, a.capacity, a.served_seq, a.skills, a.channel_capacity,
       EXISTS (SELECT 1 FROM team_members tm
               WHERE tm.team_id = $1 AND tm.agent_id = a.id) AS in_team
FROM agents a
WHERE (a.presence = 'online' OR NOT $3)
  AND (a.id IN (SELECT agent_id FROM team_members WHERE team_id = $1) OR a.id = ANY($2::bigint[]))
ORDER BY a.id
FOR NO KEY UPDATE OF a
"""

# counted in a statement of its own, AFTER the locks are held: in READ COMMITTED a new
# statement sees what the previous lock holder committed, while a count inside the locking
# statement would use that statement's older snapshot and miss it
LOADS = """
SELECT assignee_id, channel, count(*) AS load FROM conversations
WHERE assignee_id = ANY($1::bigint[]) AND status = ANY($2::text[])
GROUP BY assignee_id, channel
"""

# run once per agent, in the order of their last turn in the plan: each gets the next number
TOUCH_SERVED = """
UPDATE agents SET last_assigned_at = $2, served_seq = nextval('agents_served_seq') WHERE id = $1
"""


async def insert(
    conn: Connection, name: str, email: str, role: str, token_hash: bytes, capacity: int
) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT, name, email, role, token_hash, capacity)
    assert row is not None
    return row


async def set_token_by_email(
    conn: Connection, email: str, token_hash: bytes
) -> asyncpg.Record | None:
    return await conn.fetchrow(SET_TOKEN_BY_EMAIL, email, token_hash)


async def by_token_hash(conn: Executor, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_TOKEN_HASH, token_hash)


async def join_team(conn: Connection, team_id: int, agent_id: int) -> None:
    await conn.execute(JOIN_TEAM, team_id, agent_id)


async def set_presence(conn: Connection, agent_id: int, presence: str, now: datetime) -> None:
    await conn.execute(SET_PRESENCE, agent_id, presence, now)


async def team_ids(conn: Executor, agent_id: int) -> list[int]:
    return [r["team_id"] for r in await conn.fetch(TEAM_IDS, agent_id)]


async def lock_candidates(
    conn: Connection, team_id: int, preferred_ids: list[int], *, online_only: bool = True
) -> list[AgentLoad]:
    """Call inside a transaction: the locks hold until it ends."""
    rows = await conn.fetch(LOCK_CANDIDATES, team_id, preferred_ids, online_only)
    return await with_loads(conn, rows)


async def with_loads(conn: Connection, rows: list[asyncpg.Record]) -> list[AgentLoad]:
    """The agents of `rows` (id, capacity, served_seq, channel_capacity, skills, and in_team
    when known) with what they hold now, in all and per channel."""
    if not rows:
        return []
    total: dict[int, int] = {}
    by_channel: dict[int, dict[str, int]] = {}
    for r in await conn.fetch(LOADS, [r["id"] for r in rows], ACTIVE):
        total[r["assignee_id"]] = total.get(r["assignee_id"], 0) + r["load"]
        by_channel.setdefault(r["assignee_id"], {})[r["channel"]] = r["load"]
    return [
        AgentLoad(
            r["id"],
            r["capacity"],
            total.get(r["id"], 0),
            served_seq=r["served_seq"],
            channel_capacity=r["channel_capacity"],
            channel_load=by_channel.get(r["id"], {}),
            skills=frozenset(r["skills"]),
            in_team=r.get("in_team", True),
        )
        for r in rows
    ]


async def touch_served(conn: Connection, agent_ids_in_order: list[int], now: datetime) -> None:
    """Record that these agents got work, in this order (round robin reads it)."""
    await conn.executemany(TOUCH_SERVED, [(agent_id, now) for agent_id in agent_ids_in_order])


# --- the admin API's view and writes (api/admin_agents.py, services/teams.py) ---
# never token_hash: a view lists its columns

# an agent as admins see it: settings, teams, and how many active conversations they hold ($1:
# the active statuses)
AGENT_VIEW = """
SELECT a.id, a.name, a.email, a.role, a.presence, a.presence_changed_at, a.capacity,
       a.channel_capacity, a.skills, a.last_assigned_at, a.created_at, a.updated_at,
       array(SELECT tm.team_id FROM team_members tm WHERE tm.agent_id = a.id
             ORDER BY tm.team_id) AS team_ids,
       (SELECT count(*) FROM conversations c
        WHERE c.assignee_id = a.id AND c.status = ANY($1::text[])) AS load
FROM agents a
"""
PAGE_VIEWS = AGENT_VIEW + "WHERE a.id > $2 ORDER BY a.id LIMIT $3"
ONE_VIEW = AGENT_VIEW + "WHERE a.id = $2"

INSERT_WITH_ROUTING = """
INSERT INTO agents (name, email, role, token_hash, capacity, channel_capacity, skills)
VALUES ($1, $2, $3, $4, $5, $6, $7::text[])
RETURNING id
"""
# the agent, and with $2 every admin too, locked in one statement in id order (the order the
# assignment locks agents in): the last admin cannot be demoted by two admins at once
LOCK_FOR_CHANGE = """
SELECT id, name, role, presence, capacity, channel_capacity, skills FROM agents
WHERE id = $1 OR ($2 AND role = 'admin')
ORDER BY id
FOR NO KEY UPDATE
"""
UPDATE_SETTINGS = """
UPDATE agents SET name = $2, role = $3, capacity = $4, channel_capacity = $5,
    skills = $6::text[], updated_at = now()
WHERE id = $1
"""
EXISTING = "SELECT id FROM agents WHERE id = ANY($1::bigint[])"
LEAVE_OTHER_TEAMS = """
DELETE FROM team_members WHERE agent_id = $1 AND team_id <> ALL($2::bigint[])
"""
JOIN_TEAMS = """
INSERT INTO team_members (team_id, agent_id) SELECT unnest($2::bigint[]), $1
ON CONFLICT DO NOTHING
"""


async def page_views(conn: Executor, after_id: int, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(PAGE_VIEWS, ACTIVE, after_id, limit))


async def view(conn: Executor, agent_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(ONE_VIEW, ACTIVE, agent_id)


async def insert_with_routing(
    conn: Connection,
    *,
    name: str,
    email: str,
    role: str,
    token_hash: bytes,
    capacity: int,
    channel_capacity: dict[str, int],
    skills: list[str],
) -> int:
    agent_id = await conn.fetchval(
        INSERT_WITH_ROUTING, name, email, role, token_hash, capacity, channel_capacity, skills
    )
    return int(agent_id)


async def lock_for_change(
    conn: Connection, agent_id: int, *, with_admins: bool
) -> tuple[asyncpg.Record | None, list[int]]:
    """Call inside a transaction: (the agent's row, the ids of the admins) when with_admins."""
    rows = await conn.fetch(LOCK_FOR_CHANGE, agent_id, with_admins)
    agent = next((r for r in rows if r["id"] == agent_id), None)
    return agent, [r["id"] for r in rows if r["role"] == "admin"]


async def update_settings(
    conn: Connection,
    agent_id: int,
    *,
    name: str,
    role: str,
    capacity: int,
    channel_capacity: dict[str, int],
    skills: list[str],
) -> None:
    await conn.execute(UPDATE_SETTINGS, agent_id, name, role, capacity, channel_capacity, skills)


async def existing(conn: Executor, agent_ids: list[int]) -> set[int]:
    return {r["id"] for r in await conn.fetch(EXISTING, agent_ids)}


async def replace_teams(conn: Connection, agent_id: int, team_ids: list[int]) -> None:
    """Call inside a transaction: the agent's teams become exactly these."""
    await conn.execute(LEAVE_OTHER_TEAMS, agent_id, team_ids)
    await conn.execute(JOIN_TEAMS, agent_id, team_ids)


# what routing asks of an agent a customer prefers: could they ever take the work?
PREFERENCE_VIEW = "SELECT id, capacity, skills, presence FROM agents WHERE id = $1"


async def preference_view(conn: Executor, agent_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(PREFERENCE_VIEW, agent_id)
