"""care_sends: greetings and follow-up visits, scheduled once per contact, kind and occasion;
and what a care message needs to know of its contact."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.care import CareStatus

# Today's birthdays in each customer's own time zone, scheduled for the settings' local hour.
# $1 now; $2/$3 the (month, day) pairs of the UTC days around now (a customer's local day is
# at most one day from UTC's). 29 February is kept on 28 February in common years. The local
# year is the occasion: the unique key makes it once a year, whatever runs this and how often.
# A time zone PostgreSQL does not know (one stored before it was checked) counts as the
# default's ($5); $4 is the greeting hour. The settings come as parameters, not a join: a join
# on the one-row settings table misleads the planner into a quadratic anti-join on re-runs.
SCHEDULE_BIRTHDAYS = """
WITH candidates AS (
    SELECT c.id, c.birthday,
           CASE WHEN z.name IS NOT NULL THEN c.timezone ELSE $5::text END AS tz
    FROM contacts c
    LEFT JOIN pg_timezone_names z ON z.name = c.timezone
    WHERE c.birthday IS NOT NULL
      AND (extract(month FROM c.birthday)::int, extract(day FROM c.birthday)::int) IN (
          SELECT * FROM unnest($2::int[], $3::int[]))
),
local AS (
    SELECT id, birthday, tz, (($1::timestamptz) AT TIME ZONE tz)::date AS today FROM candidates
),
due AS (
    SELECT l.id, l.tz, l.today FROM local l
    WHERE (extract(month FROM l.birthday), extract(day FROM l.birthday))
          = (extract(month FROM l.today), extract(day FROM l.today))
       OR (extract(month FROM l.birthday) = 2 AND extract(day FROM l.birthday) = 29
           AND extract(month FROM l.today) = 2 AND extract(day FROM l.today) = 28
           AND extract(day FROM (date_trunc('year', l.today) + interval '2 months'
                                 - interval '1 day')) = 28)
)
INSERT INTO care_sends (kind, occasion, contact_id, due_at, status)
SELECT 'birthday', extract(year FROM due.today)::int::text, due.id,
       (due.today + make_time($4::int, 0, 0)) AT TIME ZONE due.tz, 'scheduled'
FROM due
WHERE NOT EXISTS (SELECT 1 FROM care_sends x
                  WHERE x.contact_id = due.id AND x.kind = 'birthday'
                    AND x.occasion = extract(year FROM due.today)::int::text)
ON CONFLICT (contact_id, kind, occasion) DO NOTHING
RETURNING id
"""

SCHEDULE_FOLLOW_UP = """
INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel, due_at, status)
VALUES ('follow_up', $1, $2, $3, $4, $5, 'scheduled')
ON CONFLICT (contact_id, kind, occasion) DO NOTHING
RETURNING id
"""

DUE_SENDS = """
SELECT id FROM care_sends
WHERE status = 'scheduled' AND due_at <= $1
ORDER BY due_at, id
LIMIT $2
"""

GET_FOR_UPDATE = """
SELECT id, kind, occasion, contact_id, conversation_id, channel, due_at, status
FROM care_sends WHERE id = $1
FOR NO KEY UPDATE
"""

# a send decided: sent (with its message), a task, skipped, cancelled or failed, and why
FINISH = """
UPDATE care_sends SET status = $2, reason = $3, channel = coalesce($4, channel),
    locale = coalesce($5, locale), message_id = $6, conversation_id = coalesce($7, conversation_id),
    sent_at = CASE WHEN $2 IN ('sent', 'task') THEN $8::timestamptz END, updated_at = $8
WHERE id = $1
"""
# quiet hours: it waits, and its attempts start again
POSTPONE = "UPDATE care_sends SET due_at = $2, attempts = 0, updated_at = $3 WHERE id = $1"
BEGIN_ATTEMPT = """
UPDATE care_sends SET attempts = attempts + 1 WHERE id = $1 AND status = 'scheduled'
RETURNING attempts
"""

CONTACT = """
SELECT c.id, c.name, c.tier, c.timezone, c.locale, c.preferred_channel, c.account_manager_id,
       EXISTS (SELECT 1 FROM contact_identities i WHERE i.contact_id = c.id AND i.kind = 'email')
           AS has_email,
       EXISTS (SELECT 1 FROM contact_identities i WHERE i.contact_id = c.id AND i.kind = 'phone')
           AS has_phone,
       EXISTS (SELECT 1 FROM contact_identities i JOIN sms_consent sc ON sc.phone = i.value
               WHERE i.contact_id = c.id AND i.kind = 'phone' AND sc.opted_out) AS sms_opted_out,
       coalesce((SELECT jsonb_object_agg(channel, granted) FROM contact_consents
                 WHERE contact_id = c.id), '{}'::jsonb) AS consents
FROM contacts c WHERE c.id = $1
"""

# the customer wrote again (on any channel) after the conversation was resolved
WRITTEN_SINCE = """
SELECT EXISTS (
    SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE c.contact_id = $1 AND m.direction = 'inbound' AND NOT m.is_automatic
      AND m.created_at > $2)
"""

# who helped: the conversation's assignee, else the last agent who replied in it
AGENT_OF = """
SELECT a.name FROM agents a
WHERE a.id = coalesce($2, (SELECT m.author_agent_id FROM messages m
                            WHERE m.conversation_id = $1 AND m.author_agent_id IS NOT NULL
                              AND NOT m.is_note
                            ORDER BY m.id DESC LIMIT 1))
"""

# a conversation care starts: a greeting (closed: it asks no one for anything) or the account
# manager's task (waiting in their team, for them)
OPEN_CARE_CONVERSATION = """
INSERT INTO conversations (contact_id, channel, subject, status, last_message_at, care_kind,
                           mailbox_id, sms_number_id, team_id, waiting_since, team_since,
                           preferred_agent_id, preferred_until, priority, tier, created_at,
                           updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13,
        (SELECT tier FROM contacts WHERE id = $1), $5, $5)
RETURNING id, contact_id, channel, status, team_id, assignee_id, mailbox_id, sms_number_id,
          subject
"""

DEFAULT_MAILBOX = """
SELECT id FROM mailboxes WHERE enabled AND smtp_host IS NOT NULL
ORDER BY from_environment DESC, id LIMIT 1
"""
DEFAULT_SMS_NUMBER = "SELECT id FROM sms_numbers WHERE enabled ORDER BY id LIMIT 1"
AGENT_TEAM = """
SELECT tm.team_id FROM team_members tm WHERE tm.agent_id = $1 ORDER BY tm.team_id LIMIT 1
"""


def birthday_days(now: datetime) -> tuple[list[int], list[int]]:
    """The (month, day) pairs a customer's local today can be while it is `now` in UTC, and 29
    February when one of them is 28 February of a common year (kept then)."""
    today = now.date()
    days = [today - timedelta(days=1), today, today + timedelta(days=1)]
    pairs = {(d.month, d.day) for d in days}
    if any(d.month == 2 and d.day == 28 and not _leap(d.year) for d in days):
        pairs.add((2, 29))
    ordered = sorted(pairs)
    return [m for m, _ in ordered], [d for _, d in ordered]


def _leap(year: int) -> bool:
    return date(year, 3, 1) - date(year, 2, 1) == timedelta(days=29)


async def schedule_birthdays(
    conn: Executor, now: datetime, *, hour: int, default_timezone: str
) -> list[int]:
    months, days = birthday_days(now)
    rows = await conn.fetch(SCHEDULE_BIRTHDAYS, now, months, days, hour, default_timezone)
    return [r["id"] for r in rows]


def follow_up_occasion(conversation_id: int, resolved_at: datetime) -> str:
    """One follow-up per resolution of a conversation (resolved again: a new occasion, and the
    earlier visit finds the conversation resolved at another instant and is cancelled)."""
    return f"conversation:{conversation_id}:{resolved_at.isoformat()}"


def resolved_at_of(occasion: str) -> datetime | None:
    try:
        return datetime.fromisoformat(occasion.split(":", 2)[2])
    except (IndexError, ValueError):
        return None


async def schedule_follow_up(
    conn: Connection,
    conversation: asyncpg.Record,
    resolved_at: datetime,
    due_at: datetime,
) -> int | None:
    found = await conn.fetchval(
        SCHEDULE_FOLLOW_UP,
        follow_up_occasion(conversation["id"], resolved_at),
        conversation["contact_id"],
        conversation["id"],
        conversation["channel"],
        due_at,
    )
    return None if found is None else int(found)


async def due_sends(conn: Executor, now: datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(DUE_SENDS, now, limit)]


async def get_for_update(conn: Connection, care_send_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_UPDATE, care_send_id)


async def finish(
    conn: Connection,
    care_send_id: int,
    status: CareStatus,
    now: datetime,
    *,
    reason: str | None = None,
    channel: str | None = None,
    locale: str | None = None,
    message_id: int | None = None,
    conversation_id: int | None = None,
) -> None:
    await conn.execute(
        FINISH,
        care_send_id,
        str(status),
        reason,
        channel,
        locale,
        message_id,
        conversation_id,
        now,
    )


async def begin_attempt(conn: Executor, care_send_id: int) -> int | None:
    """The number of this attempt, or None when the send is decided already."""
    found = await conn.fetchval(BEGIN_ATTEMPT, care_send_id)
    return None if found is None else int(found)


async def postpone(conn: Connection, care_send_id: int, due_at: datetime, now: datetime) -> None:
    await conn.execute(POSTPONE, care_send_id, due_at, now)


async def contact(conn: Executor, contact_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(CONTACT, contact_id)


async def written_since(conn: Executor, contact_id: int, since: datetime) -> bool:
    return bool(await conn.fetchval(WRITTEN_SINCE, contact_id, since))


async def agent_name(conn: Executor, conversation_id: int, assignee_id: int | None) -> str | None:
    name = await conn.fetchval(AGENT_OF, conversation_id, assignee_id)
    return None if name is None else str(name)


async def open_conversation(conn: Connection, **values: Any) -> asyncpg.Record:
    row = await conn.fetchrow(
        OPEN_CARE_CONVERSATION,
        values["contact_id"],
        values["channel"],
        values.get("subject"),
        values["status"],
        values["now"],
        values["care_kind"],
        values.get("mailbox_id"),
        values.get("sms_number_id"),
        values.get("team_id"),
        values.get("waiting_since"),
        values.get("preferred_agent_id"),
        values.get("preferred_until"),
        values.get("priority", 0),
    )
    assert row is not None
    return row


async def default_mailbox(conn: Executor) -> int | None:
    found = await conn.fetchval(DEFAULT_MAILBOX)
    return None if found is None else int(found)


async def default_sms_number(conn: Executor) -> int | None:
    found = await conn.fetchval(DEFAULT_SMS_NUMBER)
    return None if found is None else int(found)


async def agent_team(conn: Executor, agent_id: int) -> int | None:
    found = await conn.fetchval(AGENT_TEAM, agent_id)
    return None if found is None else int(found)
