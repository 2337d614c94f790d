"""conversations: their lifecycle, the routing request and the team queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.agents import Agent
from contactcenter.domain.assignment import AgentLoad, Assignment, WaitingConversation
from contactcenter.domain.enums import ACTIVE_STATUSES, Channel
from contactcenter.domain.routing import Placement, RouteDecision

ACTIVE = [str(s) for s in ACTIVE_STATUSES]

COLUMNS = """
id, contact_id, channel, status, priority, team_id, assignee_id, subject, route_requested_at,
route_version, waiting_since, assigned_at, snoozed_until, first_responded_at, resolved_at,
last_message_at, created_at, updated_at, mailbox_id, sms_number_id, tier, is_complaint, tags,
language, sla_policy_id, sla_due_at, required_skills, preferred_agent_id, preferred_until,
team_since, auto_replied_at, routing, care_kind
"""

# a new conversation is due for routing; one that opens no work (an auto-reply nobody asked
# for) is stored closed and never routed
OPEN_CONVERSATION = f"""
INSERT INTO conversations (contact_id, channel, subject, route_requested_at, route_version,
                           last_message_at, mailbox_id, status, sms_number_id)
VALUES ($1, $2, $3, CASE WHEN $6 THEN $4::timestamptz END, CASE WHEN $6 THEN 1 ELSE 0 END,
        $4, $5, CASE WHEN $6 THEN 'open' ELSE 'closed' END, $7)
RETURNING {COLUMNS}
"""

GET = f"SELECT {COLUMNS} FROM conversations WHERE id = $1"
# the contact's conversation on a channel that is still going on, if any
OPEN_FOR_CONTACT = """
SELECT id FROM conversations
WHERE contact_id = $1 AND channel = $2 AND status IN ('open', 'pending', 'snoozed')
  AND sms_number_id IS NOT DISTINCT FROM $3
ORDER BY last_message_at DESC
LIMIT 1
"""
GET_FOR_UPDATE = f"SELECT {COLUMNS} FROM conversations WHERE id = $1 FOR NO KEY UPDATE"

# a customer message on a conversation: it is active again, and routing is due when nobody
# holds it (the queue keeps its place when it already waits there)
TOUCH_INBOUND = f"""
UPDATE conversations SET
    last_message_at = $2,
    updated_at = $2,
    status = CASE WHEN status IN ('resolved', 'closed', 'snoozed', 'pending') THEN 'open'
                  ELSE status END,
    assignee_id = CASE WHEN status IN ('resolved', 'closed') THEN NULL ELSE assignee_id END,
    snoozed_until = NULL,
    resolved_at = CASE WHEN status IN ('resolved', 'closed') THEN NULL ELSE resolved_at END,
    route_requested_at = CASE
        WHEN status IN ('resolved', 'closed') OR (assignee_id IS NULL AND waiting_since IS NULL
                                                  AND route_requested_at IS NULL)
        THEN $2 ELSE route_requested_at END,
    route_version = CASE
        WHEN status IN ('resolved', 'closed') OR (assignee_id IS NULL AND waiting_since IS NULL
                                                  AND route_requested_at IS NULL)
        THEN route_version + 1 ELSE route_version END,
    waiting_since = CASE WHEN status IN ('resolved', 'closed') THEN NULL ELSE waiting_since END
WHERE id = $1
RETURNING {COLUMNS}
"""

# the route job's decision: the conversation joins its team's queue, in the place of the
# moment the customer asked (when routing was requested), not of when the job happened to run;
# it counts as in the team since now unless it already waited there
ENQUEUE_IN_TEAM = """
UPDATE conversations SET
    team_id = $2,
    priority = $3,
    route_requested_at = NULL,
    waiting_since = CASE WHEN assignee_id IS NULL AND status = 'open'
                         THEN coalesce(waiting_since, route_requested_at, $4) END,
    team_since = CASE WHEN assignee_id IS NULL AND status = 'open'
                      THEN CASE WHEN waiting_since IS NOT NULL AND team_id = $2
                                THEN coalesce(team_since, $4) ELSE $4 END END,
    tier = $5,
    sla_policy_id = $6,
    tags = $7,
    required_skills = $8,
    is_complaint = is_complaint OR $9,
    language = $10,
    preferred_agent_id = $11,
    preferred_until = $12,
    routing = $13,
    updated_at = $4
WHERE id = $1
"""

QUEUE_ORDER = "ORDER BY tier, priority DESC, sla_due_at, waiting_since, id"
WAITING_IN_TEAM = (
    "team_id = $1 AND waiting_since IS NOT NULL AND assignee_id IS NULL AND status = 'open'"
)

# the agents that conversations waiting in the team prefer (read without locks, to know whom
# to lock; at most one per agent)
PREFERRED_WAITING = f"""
SELECT DISTINCT preferred_agent_id FROM conversations
WHERE {WAITING_IN_TEAM} AND preferred_agent_id IS NOT NULL
"""

# the head of a team's queue, in the order domain.assignment.queue_order serves it, of what
# at least one of the locked agents ($3: id, skills, channels with room, in_team) could take
# now: their skills cover it, they have room on its channel, and it is theirs to take (it
# prefers them, or it waits for nobody in particular any more). A row another transaction
# changed meanwhile is re-checked by PostgreSQL and dropped if it no longer waits.
LOCK_QUEUE_HEAD = """
SELECT c.id, c.priority, c.waiting_since, c.tier, c.channel, c.sla_due_at, c.required_skills,
       c.preferred_agent_id, c.preferred_until
FROM conversations c
WHERE c.team_id = $1 AND c.waiting_since IS NOT NULL AND c.assignee_id IS NULL
  AND c.status = 'open'
  AND EXISTS (
      SELECT 1 FROM jsonb_to_recordset($3::jsonb)
                    AS a (id bigint, skills text[], channels text[], in_team boolean)
      WHERE c.required_skills <@ a.skills AND c.channel = ANY(a.channels)
        AND (a.id = c.preferred_agent_id
             OR (a.in_team AND (c.preferred_agent_id IS NULL OR c.preferred_until IS NULL
                                OR c.preferred_until <= $4))))
ORDER BY c.tier, c.priority DESC, c.sla_due_at, c.waiting_since, c.id
LIMIT $2
FOR NO KEY UPDATE OF c
"""

# the plan, written with why each agent was chosen
ASSIGN = """
UPDATE conversations c SET
    assignee_id = p.agent_id,
    assigned_at = $2::timestamptz,
    waiting_since = NULL,
    preferred_until = NULL,
    updated_at = $2::timestamptz,
    routing = c.routing || jsonb_build_object('assignment', jsonb_build_object(
        'agent_id', p.agent_id,
        'reason', CASE WHEN p.reason = 'preferred'
                       THEN coalesce(c.routing #>> '{preferred,reason}', 'preferred')
                       ELSE p.reason END,
        'load_before', p.load,
        'capacity', p.capacity,
        'at', $2::timestamptz))
FROM unnest($1::bigint[], $3::bigint[], $4::text[], $5::int[], $6::int[])
     AS p (conversation_id, agent_id, reason, load, capacity)
WHERE c.id = p.conversation_id
"""

# waiting conversations past their team's overflow wait move on to the overflow team, keeping
# their place in line (waiting_since); the skills they need become the new team's and the
# rules'
OVERFLOW_DUE = """
WITH due AS (
    SELECT c.id, c.team_id AS from_team, t.overflow_team_id AS to_team
    FROM conversations c JOIN teams t ON t.id = c.team_id
    WHERE c.waiting_since IS NOT NULL AND c.assignee_id IS NULL AND c.status = 'open'
      AND t.overflow_team_id IS NOT NULL
      AND c.team_since <= $1::timestamptz - make_interval(secs => t.overflow_after_seconds)
    ORDER BY c.team_since
    LIMIT $2
    FOR NO KEY UPDATE OF c SKIP LOCKED
)
UPDATE conversations c SET
    team_id = due.to_team,
    team_since = $1::timestamptz,
    updated_at = $1::timestamptz,
    required_skills = ARRAY(
        SELECT DISTINCT skill FROM unnest(
            nt.skills || ARRAY(SELECT jsonb_array_elements_text(
                coalesce(c.routing -> 'rule_skills', '[]'::jsonb)))) AS skill
        ORDER BY skill),
    routing = jsonb_set(c.routing, '{overflows}',
        coalesce(c.routing -> 'overflows', '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
            'from_team_id', due.from_team, 'to_team_id', due.to_team, 'at', $1::timestamptz)))
FROM due JOIN teams nt ON nt.id = due.to_team
WHERE c.id = due.id
RETURNING c.id, c.team_id, due.from_team, c.assignee_id
"""

# a person's decision: to an agent, or into a team's queue (at its back: waiting from now)
TRANSFER = f"""
UPDATE conversations SET
    team_id = $2,
    assignee_id = $3,
    assigned_at = CASE WHEN $3::bigint IS NOT NULL THEN $6::timestamptz END,
    waiting_since = CASE WHEN $3::bigint IS NULL THEN $6::timestamptz END,
    team_since = CASE WHEN $3::bigint IS NULL THEN $6::timestamptz END,
    required_skills = $4,
    preferred_agent_id = NULL,
    preferred_until = NULL,
    route_requested_at = NULL,
    updated_at = $6,
    routing = jsonb_set(
        routing || CASE WHEN $3::bigint IS NULL THEN '{{}}'::jsonb
                   ELSE jsonb_build_object('assignment', jsonb_build_object(
                       'agent_id', $3::bigint, 'reason', 'transfer', 'by', $5::bigint,
                       'at', $6::timestamptz)) END,
        '{{transfers}}',
        coalesce(routing -> 'transfers', '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
            'by', $5::bigint, 'from_team_id', team_id, 'from_agent_id', assignee_id,
            'to_team_id', $2::bigint, 'to_agent_id', $3::bigint, 'at', $6::timestamptz)))
WHERE id = $1
RETURNING {COLUMNS}
"""

MARK_AUTO_REPLIED = "UPDATE conversations SET auto_replied_at = $2 WHERE id = $1"

HELD_BY = """
SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND assignee_id = $2)
"""

ROUTE_DUE = """
SELECT id, route_version FROM conversations
WHERE route_requested_at IS NOT NULL AND route_requested_at < $1
ORDER BY route_requested_at
LIMIT $2
"""

# teams where someone waits while an agent who may take it has a free slot: an online member
# (once no wait for a preferred agent holds it back), or the online agent it prefers
TEAMS_WITH_IDLE_CAPACITY = """
WITH free_agents AS (
    SELECT a.id FROM agents a
    WHERE a.presence = 'online'
      AND a.capacity > (SELECT count(*) FROM conversations c
                        WHERE c.assignee_id = a.id AND c.status = ANY($1::text[]))
)
SELECT DISTINCT tm.team_id FROM team_members tm JOIN free_agents f ON f.id = tm.agent_id
WHERE EXISTS (SELECT 1 FROM conversations w
              WHERE w.team_id = tm.team_id AND w.waiting_since IS NOT NULL
                AND w.assignee_id IS NULL AND w.status = 'open'
                AND (w.preferred_agent_id IS NULL OR w.preferred_until IS NULL
                     OR w.preferred_until <= $2))
UNION
SELECT DISTINCT w.team_id FROM conversations w JOIN free_agents f ON f.id = w.preferred_agent_id
WHERE w.waiting_since IS NOT NULL AND w.assignee_id IS NULL AND w.status = 'open'
"""

# the teams whose queues an agent could take from: their own, and those where conversations
# wait for them
TEAMS_FOR_AGENT = """
SELECT team_id FROM team_members WHERE agent_id = $1
UNION
SELECT DISTINCT team_id FROM conversations
WHERE preferred_agent_id = $1 AND waiting_since IS NOT NULL AND assignee_id IS NULL
  AND status = 'open'
"""

# a woken conversation nobody holds is routed again; a batch at a time, the longest overdue
# first, and with the instant each snooze ended (its SLA clock resumes from there)
WAKE_SNOOZED = f"""
WITH due AS (
    SELECT id, snoozed_until FROM conversations
    WHERE status = 'snoozed' AND snoozed_until <= $1
    ORDER BY snoozed_until
    LIMIT $2
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE conversations c SET
    status = 'open',
    snoozed_until = NULL,
    updated_at = $1,
    route_requested_at = CASE WHEN c.assignee_id IS NULL THEN $1 END,
    route_version = CASE WHEN c.assignee_id IS NULL THEN c.route_version + 1
                         ELSE c.route_version END
FROM due WHERE c.id = due.id
RETURNING {", ".join("c." + name.strip() for name in COLUMNS.split(","))},
          due.snoozed_until AS woke_at
"""

# an agent's change of status (domain.conversations.check_transition allows it first). A
# reopened conversation goes back through routing like one the customer reopened: its old slot
# was freed at resolution and may have been given away since.
SET_STATUS = f"""
UPDATE conversations SET
    status = $2::text,
    snoozed_until = $3,
    resolved_at = CASE WHEN $2::text = 'resolved' THEN $4::timestamptz END,
    assignee_id = CASE WHEN status IN ('resolved', 'closed') THEN NULL ELSE assignee_id END,
    waiting_since = CASE WHEN $2::text = 'open' AND status NOT IN ('resolved', 'closed')
                         THEN waiting_since END,
    route_requested_at = CASE
        WHEN $2::text <> 'open' THEN NULL
        WHEN status IN ('resolved', 'closed') THEN $4::timestamptz
        WHEN assignee_id IS NULL AND waiting_since IS NULL
        THEN coalesce(route_requested_at, $4::timestamptz)
        ELSE route_requested_at END,
    route_version = CASE
        WHEN $2::text = 'open' AND (status IN ('resolved', 'closed')
             OR (assignee_id IS NULL AND waiting_since IS NULL AND route_requested_at IS NULL))
        THEN route_version + 1 ELSE route_version END,
    updated_at = $4::timestamptz
WHERE id = $1
RETURNING {COLUMNS}
"""

MARK_FIRST_RESPONSE = """
UPDATE conversations SET first_responded_at = coalesce(first_responded_at, $2), updated_at = $2,
                         last_message_at = $2
WHERE id = $1
"""

# the contact's other conversations that the viewer may open (the same rule as
# domain.agents.Agent.can_see)
SET_TAGS = """
UPDATE conversations SET tags = $2::text[], updated_at = $3 WHERE id = $1 RETURNING tags
"""
PAST_FOR_CONTACT = """
SELECT id, channel, status, created_at, resolved_at FROM conversations
WHERE contact_id = $1 AND id <> $2
  AND ($3 OR assignee_id = $4 OR team_id = ANY($5::bigint[]))
ORDER BY created_at DESC
LIMIT 20
"""


async def open_new(
    conn: Connection,
    contact_id: int,
    channel: str,
    subject: str | None,
    now: datetime,
    *,
    mailbox_id: int | None = None,
    sms_number_id: int | None = None,
    opens_work: bool = True,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        OPEN_CONVERSATION, contact_id, channel, subject, now, mailbox_id, opens_work, sms_number_id
    )
    assert row is not None
    return row


async def open_for_contact(
    conn: Executor, contact_id: int, channel: str, sms_number_id: int | None
) -> int | None:
    """The contact's going conversation on that channel (and SMS number), if any."""
    found = await conn.fetchval(OPEN_FOR_CONTACT, contact_id, channel, sms_number_id)
    return None if found is None else int(found)


async def get(conn: Executor, conversation_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, conversation_id)


async def get_for_update(conn: Connection, conversation_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, conversation_id)


async def touch_inbound(
    conn: Connection, conversation_id: int, now: datetime
) -> asyncpg.Record | None:
    """None when there is no such conversation."""
    return await conn.fetchrow(TOUCH_INBOUND, conversation_id, now)


async def enqueue_in_team(
    conn: Connection, conversation_id: int, decision: RouteDecision, placed: Placement
) -> None:
    """Put the conversation in its team's queue as routing decided."""
    await conn.execute(
        ENQUEUE_IN_TEAM,
        conversation_id,
        decision.team_id,
        decision.priority,
        placed.now,
        decision.tier,
        decision.sla_policy_id,
        list(decision.tags),
        list(placed.required_skills),
        decision.complaint,
        placed.language,
        placed.preferred_agent_id,
        placed.preferred_until,
        placed.explanation,
    )


async def preferred_waiting(conn: Connection, team_id: int) -> list[int]:
    return [r["preferred_agent_id"] for r in await conn.fetch(PREFERRED_WAITING, team_id)]


async def lock_queue_head(
    conn: Connection, team_id: int, limit: int, candidates: list[AgentLoad], now: datetime
) -> list[WaitingConversation]:
    """The head of the queue that these agents could serve, locked."""
    able = [
        {
            "id": agent.id,
            "skills": sorted(agent.skills),
            "channels": [str(channel) for channel in Channel if agent.has_room_on(channel)],
            "in_team": agent.in_team,
        }
        for agent in candidates
        if agent.free_slots > 0
    ]
    rows = await conn.fetch(LOCK_QUEUE_HEAD, team_id, limit, able, now)
    return [
        WaitingConversation(
            r["id"],
            r["priority"],
            r["waiting_since"],
            tier=r["tier"],
            channel=r["channel"],
            sla_due_at=r["sla_due_at"],
            required_skills=frozenset(r["required_skills"]),
            preferred_agent_id=r["preferred_agent_id"],
            preferred_until=r["preferred_until"],
        )
        for r in rows
    ]


async def assign(conn: Connection, plan: list[Assignment], now: datetime) -> None:
    await conn.execute(
        ASSIGN,
        [a.conversation_id for a in plan],
        now,
        [a.agent_id for a in plan],
        [a.reason for a in plan],
        [a.load for a in plan],
        [a.capacity for a in plan],
    )


async def overflow_due(conn: Executor, now: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(OVERFLOW_DUE, now, limit))


async def teams_for_agent(conn: Executor, agent_id: int) -> list[int]:
    return [r["team_id"] for r in await conn.fetch(TEAMS_FOR_AGENT, agent_id)]


async def route_due(conn: Executor, before: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(ROUTE_DUE, before, limit))


async def teams_with_idle_capacity(conn: Executor, now: datetime) -> list[int]:
    return [r["team_id"] for r in await conn.fetch(TEAMS_WITH_IDLE_CAPACITY, ACTIVE, now)]


async def wake_snoozed(conn: Executor, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` snoozed conversations whose time has come, open again; each row has the
    instant its snooze ended (woke_at)."""
    return list(await conn.fetch(WAKE_SNOOZED, now, limit))


async def set_status(
    conn: Connection,
    conversation_id: int,
    status: str,
    snoozed_until: datetime | None,
    now: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(SET_STATUS, conversation_id, status, snoozed_until, now)
    assert row is not None
    return row


async def set_tags(
    conn: Connection, conversation_id: int, tags: list[str], now: datetime
) -> list[str]:
    return list(await conn.fetchval(SET_TAGS, conversation_id, tags, now))


async def mark_first_response(conn: Connection, conversation_id: int, now: datetime) -> None:
    await conn.execute(MARK_FIRST_RESPONSE, conversation_id, now)


async def past_for_contact(
    conn: Executor, contact_id: int, except_id: int, viewer: Agent
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        PAST_FOR_CONTACT,
        contact_id,
        except_id,
        viewer.sees_everything,
        viewer.id,
        list(viewer.team_ids),
    )
    return [dict(r) for r in rows]


async def transfer(
    conn: Connection,
    conversation_id: int,
    *,
    team_id: int,
    agent_id: int | None,
    required_skills: list[str],
    by: int,
    now: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        TRANSFER, conversation_id, team_id, agent_id, required_skills, by, now
    )
    assert row is not None
    return row


async def held_by(conn: Executor, conversation_id: int, agent_id: int) -> bool:
    return bool(await conn.fetchval(HELD_BY, conversation_id, agent_id))


async def mark_auto_replied(conn: Connection, conversation_id: int, now: datetime) -> None:
    await conn.execute(MARK_AUTO_REPLIED, conversation_id, now)
