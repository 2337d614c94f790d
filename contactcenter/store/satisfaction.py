"""satisfaction_scores: the answers to follow-up visits, the visits they answer (care_sends),
and the recovery conversation a low score opens."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.assignment import AgentLoad
from contactcenter.store import agents

# the one row of care settings (read here until the care settings store has its own module)

# the visit a survey answers, locked so two answers to it (the page and an SMS digit, or two
# clicks) are taken one after the other
LOCK_CARE_SEND = """
SELECT id, kind, status, sent_at, contact_id, conversation_id, channel
FROM care_sends WHERE id = $1
FOR NO KEY UPDATE
"""

# in a statement of its own, after the lock: it sees an answer committed while we waited
ANSWERED = "SELECT EXISTS (SELECT 1 FROM satisfaction_scores WHERE care_send_id = $1)"

# what the survey page shows: the visit, whether it was answered, and who the customer is
SURVEY_VIEW = """
SELECT s.id, s.kind, s.status, s.sent_at, s.conversation_id, c.name, c.locale,
       EXISTS (SELECT 1 FROM satisfaction_scores x WHERE x.care_send_id = s.id) AS answered
FROM care_sends s JOIN contacts c ON c.id = s.contact_id
WHERE s.id = $1
"""

# the latest follow-up sent by SMS to the owner of this phone number and not answered yet,
# sent at or after $2 (older ones take no answer any more)
OPEN_SMS_FOLLOW_UP = """
SELECT s.id, s.conversation_id
FROM contact_identities i
JOIN care_sends s ON s.contact_id = i.contact_id
WHERE i.kind = 'phone' AND i.value = $1
  AND s.kind = 'follow_up' AND s.status = 'sent' AND s.channel = 'sms'
  AND s.sent_at >= $2 AND s.conversation_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM satisfaction_scores x WHERE x.care_send_id = s.id)
  -- only while the visit is the last thing said: once the customer wrote anything since, a
  -- digit answers whoever they are talking to now, not the survey
  AND NOT EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                  WHERE c.contact_id = s.contact_id AND m.direction = 'inbound'
                    AND NOT m.is_automatic AND m.created_at > s.sent_at)
ORDER BY s.sent_at DESC, s.id DESC
LIMIT 1
"""

# the agent who last wrote to the customer in the conversation (a reply, not a note)
LAST_AGENT_IN_CONVERSATION = """
SELECT author_agent_id FROM messages
WHERE conversation_id = $1 AND direction = 'outbound' AND NOT is_note
  AND author_agent_id IS NOT NULL
ORDER BY id DESC
LIMIT 1
"""

# the first answer wins: a second one finds the unique care_send_id taken
INSERT_SCORE = """
INSERT INTO satisfaction_scores (care_send_id, conversation_id, contact_id, agent_id, team_id,
                                 tier, channel, score, comment, answered_by,
                                 recovery_conversation_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (care_send_id) DO NOTHING
RETURNING id
"""

# the team's supervisors, locked in id order as every assignment locks agents (their loads
# are counted after, in a statement of its own: see store/agents.py)
LOCK_TEAM_SUPERVISORS = """
SELECT a.id, a.capacity, a.presence, a.served_seq, a.skills, a.channel_capacity
FROM agents a
WHERE a.role = 'supervisor'
  AND a.id IN (SELECT agent_id FROM team_members WHERE team_id = $1)
ORDER BY a.id
FOR NO KEY UPDATE OF a
"""

# a conversation opened by a low score: open, of the original team, held by the supervisor
# chosen ($6) or waiting in the team's queue from now; never routed (nothing to decide)
OPEN_RECOVERY = """
INSERT INTO conversations (contact_id, channel, subject, status, priority, team_id, assignee_id,
                           assigned_at, waiting_since, team_since, tier, tags, is_complaint,
                           care_kind, mailbox_id, sms_number_id, required_skills, sla_policy_id,
                           routing, last_message_at, created_at, updated_at)
VALUES ($1, $2, $3, 'open', $4, $5, $6,
        CASE WHEN $6::bigint IS NOT NULL THEN $7::timestamptz END,
        CASE WHEN $6::bigint IS NULL THEN $7::timestamptz END,
        CASE WHEN $6::bigint IS NULL THEN $7::timestamptz END,
        $8, ARRAY['recovery'], true, 'recovery', $9, $10, $11, $12, $13, $7, $7, $7)
RETURNING id, team_id, assignee_id
"""


@dataclass(frozen=True)
class NewScore:
    """A score row, in INSERT_SCORE's order."""

    care_send_id: int
    conversation_id: int
    contact_id: int
    agent_id: int | None
    team_id: int | None
    tier: int
    channel: str
    score: int
    comment: str | None
    answered_by: str
    recovery_conversation_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class NewRecovery:
    """A recovery conversation, in OPEN_RECOVERY's order."""

    contact_id: int
    channel: str
    subject: str
    priority: int
    team_id: int
    assignee_id: int | None
    now: datetime
    tier: int
    mailbox_id: int | None
    sms_number_id: int | None
    required_skills: list[str]
    sla_policy_id: int | None
    routing: dict[str, Any]


async def lock_care_send(conn: Connection, care_send_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_CARE_SEND, care_send_id)


async def answered(conn: Connection, care_send_id: int) -> bool:
    return bool(await conn.fetchval(ANSWERED, care_send_id))


async def survey_view(conn: Executor, care_send_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SURVEY_VIEW, care_send_id)


async def open_sms_follow_up(
    conn: Executor, phone: str, sent_since: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(OPEN_SMS_FOLLOW_UP, phone, sent_since)


async def last_agent_in_conversation(conn: Executor, conversation_id: int) -> int | None:
    value = await conn.fetchval(LAST_AGENT_IN_CONVERSATION, conversation_id)
    return None if value is None else int(value)


async def insert_score(conn: Connection, score: NewScore) -> int | None:
    """The new score's id, or None when the visit already has one."""
    value = await conn.fetchval(INSERT_SCORE, *astuple(score))
    return None if value is None else int(value)


async def lock_team_supervisors(conn: Connection, team_id: int) -> list[tuple[AgentLoad, bool]]:
    """The team's supervisors with their loads, and whether each is online; locked until the
    transaction ends."""
    rows = await conn.fetch(LOCK_TEAM_SUPERVISORS, team_id)
    loads = await agents.with_loads(conn, rows)
    return [(load, row["presence"] == "online") for load, row in zip(loads, rows, strict=True)]


async def open_recovery(conn: Connection, recovery: NewRecovery) -> asyncpg.Record:
    row = await conn.fetchrow(OPEN_RECOVERY, *astuple(recovery))
    assert row is not None
    return row
