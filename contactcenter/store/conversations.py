"""conversations: their lifecycle, the routing request and the team queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.agents import Agent
from contactcenter.domain.assignment import WaitingConversation
from contactcenter.domain.enums import ACTIVE_STATUSES

ACTIVE = [str(s) for s in ACTIVE_STATUSES]

COLUMNS = """
id, contact_id, channel, status, priority, team_id, assignee_id, subject, route_requested_at,
route_version, waiting_since, assigned_at, snoozed_until, first_responded_at, resolved_at,
last_message_at, created_at, updated_at, mailbox_id, sms_number_id
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
# moment the customer asked (when routing was requested), not of when the job happened to run
ENQUEUE_IN_TEAM = """
UPDATE conversations SET
    team_id = $2,
    priority = $3,
    route_requested_at = NULL,
    waiting_since = CASE WHEN assignee_id IS NULL AND status = 'open'
                         THEN coalesce(waiting_since, route_requested_at, $4) END,
    updated_at = $4
WHERE id = $1
"""

# the head of a team's queue, in the order domain.assignment.queue_order serves it (a row
# another transaction changed meanwhile is re-checked by PostgreSQL and dropped if it no
# longer waits)
LOCK_QUEUE_HEAD = """
SELECT id, priority, waiting_since FROM conversations
WHERE team_id = $1 AND waiting_since IS NOT NULL AND assignee_id IS NULL AND status = 'open'
ORDER BY priority DESC, waiting_since, id
LIMIT $2
FOR NO KEY UPDATE
"""

ASSIGN = """
UPDATE conversations SET
    assignee_id = $2, assigned_at = $3, waiting_since = NULL, updated_at = $3
WHERE id = ANY($1::bigint[])
"""

ROUTE_DUE = """
SELECT id, route_version FROM conversations
WHERE route_requested_at IS NOT NULL AND route_requested_at < $1
ORDER BY route_requested_at
LIMIT $2
"""

# teams where someone waits while an online member has a free slot
TEAMS_WITH_IDLE_CAPACITY = """
SELECT DISTINCT w.team_id FROM conversations w
JOIN team_members tm ON tm.team_id = w.team_id
JOIN agents a ON a.id = tm.agent_id AND a.presence = 'online'
WHERE w.waiting_since IS NOT NULL AND w.assignee_id IS NULL AND w.status = 'open'
  AND a.capacity > (SELECT count(*) FROM conversations c
                    WHERE c.assignee_id = a.id AND c.status = ANY($1::text[]))
"""

# a woken conversation nobody holds is routed again
WAKE_SNOOZED = f"""
UPDATE conversations SET
    status = 'open',
    snoozed_until = NULL,
    updated_at = $1,
    route_requested_at = CASE WHEN assignee_id IS NULL THEN $1 END,
    route_version = CASE WHEN assignee_id IS NULL THEN route_version + 1 ELSE route_version END
WHERE status = 'snoozed' AND snoozed_until <= $1
RETURNING {COLUMNS}
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
    conn: Connection, conversation_id: int, team_id: int | None, priority: int, now: datetime
) -> None:
    await conn.execute(ENQUEUE_IN_TEAM, conversation_id, team_id, priority, now)


async def lock_queue_head(conn: Connection, team_id: int, limit: int) -> list[WaitingConversation]:
    rows = await conn.fetch(LOCK_QUEUE_HEAD, team_id, limit)
    return [WaitingConversation(r["id"], r["priority"], r["waiting_since"]) for r in rows]


async def assign(
    conn: Connection, conversation_ids: list[int], agent_id: int, now: datetime
) -> None:
    await conn.execute(ASSIGN, conversation_ids, agent_id, now)


async def route_due(conn: Executor, before: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(ROUTE_DUE, before, limit))


async def teams_with_idle_capacity(conn: Executor) -> list[int]:
    return [r["team_id"] for r in await conn.fetch(TEAMS_WITH_IDLE_CAPACITY, ACTIVE)]


async def wake_snoozed(conn: Executor, now: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(WAKE_SNOOZED, now))


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
