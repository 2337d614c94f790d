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

# the team's online agents, locked in id order (fills of two teams sharing an agent take the
# locks in the same order, so they queue instead of deadlocking)
LOCK_ONLINE = """
SELECT a.id, a.capacity, a.last_assigned_at
FROM agents a
JOIN team_members tm ON tm.agent_id = a.id AND tm.team_id = $1
WHERE a.presence = 'online'
ORDER BY a.id
FOR NO KEY UPDATE OF a
"""

# counted in a statement of its own, AFTER the locks are held: in READ COMMITTED a new
# statement sees what the previous lock holder committed, while a count inside the locking
# statement would use that statement's older snapshot and miss it
LOADS = """
SELECT assignee_id, count(*) AS load FROM conversations
WHERE assignee_id = ANY($1::bigint[]) AND status = ANY($2::text[])
GROUP BY assignee_id
"""

TOUCH_ASSIGNED = "UPDATE agents SET last_assigned_at = $2 WHERE id = $1"


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


async def lock_online_with_loads(conn: Connection, team_id: int) -> list[AgentLoad]:
    """Call inside a transaction: the locks hold until it ends."""
    rows = await conn.fetch(LOCK_ONLINE, team_id)
    if not rows:
        return []
    counted = await conn.fetch(LOADS, [r["id"] for r in rows], ACTIVE)
    load = {r["assignee_id"]: r["load"] for r in counted}
    return [
        AgentLoad(r["id"], r["capacity"], load.get(r["id"], 0), r["last_assigned_at"]) for r in rows
    ]


async def touch_assigned(conn: Connection, agent_id: int, now: datetime) -> None:
    await conn.execute(TOUCH_ASSIGNED, agent_id, now)
