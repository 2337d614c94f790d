"""conversation_sla (each conversation's SLA clocks) and sla_events (what fired)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.sla import Measured, SlaClocks, SlaState, Timer

CLOCK_FIELDS = [f.name for f in dataclasses.fields(SlaClocks)]
CLOCK_COLUMNS = ", ".join(CLOCK_FIELDS)

GET_FOR_UPDATE = f"""
SELECT policy_id, fired_timers, state, next_timer_at, {CLOCK_COLUMNS}
FROM conversation_sla WHERE conversation_id = $1
FOR NO KEY UPDATE
"""

# the clocks, what is pending and the state; the conversation keeps the nearest breach
# instant as its queue key (sla_due_at)
_SAVED = ", ".join(f"{name} = ${i + 8}" for i, name in enumerate(CLOCK_FIELDS))
SAVE = f"""
WITH saved AS (
    INSERT INTO conversation_sla (conversation_id, policy_id, fired_timers, state, next_timer_at,
                                  first_response_time, resolution_time, {CLOCK_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, {", ".join(f"${i + 8}" for i in range(len(CLOCK_FIELDS)))})
    ON CONFLICT (conversation_id) DO UPDATE SET
        policy_id = $2, fired_timers = $3, state = $4, next_timer_at = $5,
        first_response_time = $6, resolution_time = $7, updated_at = now(), {_SAVED}
    RETURNING conversation_id
)
UPDATE conversations SET sla_due_at = ${len(CLOCK_FIELDS) + 8}
FROM saved WHERE conversations.id = saved.conversation_id
"""

INSERT_EVENT = """
INSERT INTO sla_events (conversation_id, policy_id, kind, stage, due_at, fired_at, team_id,
                        assignee_id, tier, channel, notify_email)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (conversation_id, kind, stage, due_at) DO NOTHING
RETURNING id
"""
CLEAR_TIMER = "UPDATE conversation_sla SET next_timer_at = NULL WHERE conversation_id = $1"
SET_EVENT_ESCALATION = "UPDATE sla_events SET escalation = $2 WHERE id = $1"

# timers whose instant comes before $1: armed again (their job may be lost) or acted on
TIMERS_BEFORE = """
SELECT conversation_id, next_timer_at FROM conversation_sla
WHERE next_timer_at < $1
ORDER BY next_timer_at
LIMIT $2
"""

TIMERS_FROM_START = """
SELECT conversation_id, next_timer_at FROM conversation_sla
WHERE next_timer_at IS NOT NULL
ORDER BY next_timer_at, conversation_id
LIMIT $1
"""
TIMERS_AFTER = """
SELECT conversation_id, next_timer_at FROM conversation_sla
WHERE (next_timer_at, conversation_id) > ($1, $2)
ORDER BY next_timer_at, conversation_id
LIMIT $3
"""

VIEW = """
SELECT s.policy_id, p.name AS policy_name, s.state, s.started_at, s.first_response_due_at,
       s.first_responded_at, s.first_response_stopped_at, s.next_response_started_at,
       s.next_response_due_at, s.resolution_due_at, s.resolution_spent,
       s.resolution_running_since, s.resolution_breached_at, s.stopped_at,
       s.first_response_time, s.resolution_time
FROM conversation_sla s LEFT JOIN sla_policies p ON p.id = s.policy_id
WHERE s.conversation_id = $1
"""
EVENTS_OF = """
SELECT id, kind, stage, due_at, fired_at, escalation FROM sla_events
WHERE conversation_id = $1 ORDER BY fired_at, id LIMIT 100
"""

EVENT_FOR_NOTICE = """
SELECT e.id, e.conversation_id, e.kind, e.stage, e.due_at, e.fired_at, e.tier, e.channel,
       e.notify_email, e.notify_attempts, e.notified_at, e.notify_error, e.escalation,
       c.subject, c.priority, t.name AS team_name, a.name AS assignee_name,
       p.name AS policy_name
FROM sla_events e
JOIN conversations c ON c.id = e.conversation_id
LEFT JOIN teams t ON t.id = c.team_id
LEFT JOIN agents a ON a.id = c.assignee_id
LEFT JOIN sla_policies p ON p.id = e.policy_id
WHERE e.id = $1
FOR NO KEY UPDATE OF e
"""
BEGIN_NOTICE_ATTEMPT = """
UPDATE sla_events SET notify_attempts = notify_attempts + 1
WHERE id = $1 AND notify_email IS NOT NULL AND notified_at IS NULL AND notify_error IS NULL
RETURNING notify_attempts
"""
MARK_NOTIFIED = "UPDATE sla_events SET notified_at = $2 WHERE id = $1"
MARK_NOTICE_FAILED = "UPDATE sla_events SET notify_error = $2 WHERE id = $1"
NOTICES_BEFORE = """
SELECT id FROM sla_events
WHERE notify_email IS NOT NULL AND notified_at IS NULL AND notify_error IS NULL
  AND fired_at < $1
ORDER BY fired_at
LIMIT $2
"""

ESCALATION_MEMBERSHIP = """
SELECT EXISTS (SELECT 1 FROM team_members WHERE team_id = $1 AND agent_id = $2)
"""

# a breach's escalation: the priority only ever goes up; a move to the escalation team queues
# the conversation there (keeping its place in line) unless its assignee is in that team
ESCALATE = """
UPDATE conversations c SET
    priority = GREATEST(c.priority, coalesce($2::smallint, c.priority)),
    team_id = coalesce($3, c.team_id),
    assignee_id = CASE WHEN $4 THEN NULL ELSE c.assignee_id END,
    waiting_since = CASE WHEN $4 AND c.status = 'open' THEN coalesce(c.waiting_since, $5)
                         ELSE c.waiting_since END,
    team_since = CASE WHEN $3::bigint IS NOT NULL AND $3 IS DISTINCT FROM c.team_id THEN $5
                      ELSE c.team_since END,
    preferred_agent_id = CASE WHEN $3::bigint IS NOT NULL AND $3 IS DISTINCT FROM c.team_id
                              THEN NULL ELSE c.preferred_agent_id END,
    preferred_until = CASE WHEN $3::bigint IS NOT NULL AND $3 IS DISTINCT FROM c.team_id
                           THEN NULL ELSE c.preferred_until END,
    required_skills = CASE WHEN $3::bigint IS NOT NULL AND $3 IS DISTINCT FROM c.team_id
        THEN ARRAY(SELECT DISTINCT skill FROM unnest(
                 (SELECT skills FROM teams WHERE id = $3) || ARRAY(
                     SELECT jsonb_array_elements_text(
                         coalesce(c.routing -> 'rule_skills', '[]'::jsonb)))) AS skill
                   ORDER BY skill)
        ELSE c.required_skills END,
    routing = jsonb_set(c.routing, '{escalations}',
        coalesce(c.routing -> 'escalations', '[]'::jsonb) || jsonb_build_array($6::jsonb)),
    updated_at = $5
WHERE c.id = $1
RETURNING c.team_id, c.assignee_id, c.priority
"""


@dataclass(frozen=True)
class StoredClocks:
    policy_id: int | None
    clocks: SlaClocks
    fired: frozenset[str]
    state: SlaState
    next_timer_at: datetime | None


def _clocks(row: asyncpg.Record) -> SlaClocks:
    return SlaClocks(**{name: row[name] for name in CLOCK_FIELDS})


async def get_for_update(conn: Connection, conversation_id: int) -> StoredClocks | None:
    row = await conn.fetchrow(GET_FOR_UPDATE, conversation_id)
    if row is None:
        return None
    return StoredClocks(
        policy_id=row["policy_id"],
        clocks=_clocks(row),
        fired=frozenset(row["fired_timers"]),
        state=SlaState(row["state"]),
        next_timer_at=row["next_timer_at"],
    )


async def save(
    conn: Connection,
    conversation_id: int,
    stored: StoredClocks,
    measured: Measured,
    queue_due_at: datetime | None,
) -> None:
    """Insert or replace the conversation's clocks, and its queue's SLA key."""
    clocks = stored.clocks
    await conn.execute(
        SAVE,
        conversation_id,
        stored.policy_id,
        sorted(stored.fired),
        str(stored.state),
        stored.next_timer_at,
        measured.first_response,
        measured.resolution,
        *(getattr(clocks, name) for name in CLOCK_FIELDS),
        queue_due_at,
    )


async def insert_event(
    conn: Connection,
    conversation: Mapping[str, Any],
    policy_id: int | None,
    timer: Timer,
    fired_at: datetime,
    notify_email: str | None,
) -> int | None:
    """The event's id, or None when this timer fired already (another job or the sweeper)."""
    found = await conn.fetchval(
        INSERT_EVENT,
        conversation["id"],
        policy_id,
        str(timer.kind),
        str(timer.stage),
        timer.due_at,
        fired_at,
        conversation["team_id"],
        conversation["assignee_id"],
        conversation["tier"],
        conversation["channel"],
        notify_email,
    )
    return None if found is None else int(found)


async def view(conn: Executor, conversation_id: int) -> dict[str, Any] | None:
    """The conversation's SLA as agents see it: the policy, the state, each clock's due
    instant, and what fired."""
    row = await conn.fetchrow(VIEW, conversation_id)
    if row is None:
        return None
    paused = row["stopped_at"] is None and row["resolution_running_since"] is None
    return {
        "policy": {"id": row["policy_id"], "name": row["policy_name"]},
        "state": row["state"],
        "started_at": row["started_at"],
        "first_response": {
            "due_at": row["first_response_due_at"],
            "responded_at": row["first_responded_at"],
            "seconds": _seconds(row["first_response_time"]),
        },
        "next_response": {
            "started_at": row["next_response_started_at"],
            "due_at": row["next_response_due_at"],
        },
        "resolution": {
            "due_at": row["resolution_due_at"],
            "paused": paused,
            "breached_at": row["resolution_breached_at"],
            "resolved_at": row["stopped_at"],
            "spent_seconds": _seconds(row["resolution_spent"]),
        },
        "events": [dict(r) for r in await conn.fetch(EVENTS_OF, conversation_id)],
    }


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


async def clear_timer(conn: Connection, conversation_id: int) -> None:
    await conn.execute(CLEAR_TIMER, conversation_id)


async def set_event_escalation(conn: Connection, event_id: int, done: dict[str, Any]) -> None:
    await conn.execute(SET_EVENT_ESCALATION, event_id, done)


async def timers_after(
    conn: Executor, after: tuple[datetime, int] | None, limit: int
) -> list[asyncpg.Record]:
    """Every pending timer after `after` (instant, conversation), in order: to arm again."""
    if after is None:
        return list(await conn.fetch(TIMERS_FROM_START, limit))
    return list(await conn.fetch(TIMERS_AFTER, after[0], after[1], limit))


async def timers_before(conn: Executor, before: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(TIMERS_BEFORE, before, limit))


async def is_member(conn: Executor, team_id: int, agent_id: int) -> bool:
    return bool(await conn.fetchval(ESCALATION_MEMBERSHIP, team_id, agent_id))


async def escalate(
    conn: Connection,
    conversation_id: int,
    *,
    raise_priority_to: int | None,
    team_id: int | None,
    unassign: bool,
    now: datetime,
    record: dict[str, Any],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        ESCALATE, conversation_id, raise_priority_to, team_id, unassign, now, record
    )
    assert row is not None
    return row


async def event_for_notice(conn: Connection, event_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(EVENT_FOR_NOTICE, event_id)


async def begin_notice_attempt(conn: Executor, event_id: int) -> int | None:
    """The number of this attempt, or None when the notice is not waiting to be sent."""
    attempt = await conn.fetchval(BEGIN_NOTICE_ATTEMPT, event_id)
    return None if attempt is None else int(attempt)


async def mark_notified(conn: Connection, event_id: int, now: datetime) -> None:
    await conn.execute(MARK_NOTIFIED, event_id, now)


async def mark_notice_failed(conn: Connection, event_id: int, error: str) -> None:
    await conn.execute(MARK_NOTICE_FAILED, event_id, error[:1000])


async def notices_before(conn: Executor, before: datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(NOTICES_BEFORE, before, limit)]
