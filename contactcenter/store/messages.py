"""messages: inbound and outbound, with their delivery status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor

COLUMNS = """
m.id, m.conversation_id, m.direction, m.is_note, m.channel, m.external_id, m.author_agent_id,
m.body_text, m.status, m.error_code, m.error_message, m.sent_at, m.created_at
"""

FIND_BY_EXTERNAL_ID = f"""
SELECT {COLUMNS} FROM messages m WHERE m.channel = $1 AND m.external_id = $2
"""

INSERT_INBOUND = f"""
INSERT INTO messages AS m (conversation_id, direction, channel, external_id, body_text, status,
                           created_at)
VALUES ($1, 'inbound', $2, $3, $4, 'received', $5)
RETURNING {COLUMNS}
"""

INSERT_OUTBOUND = f"""
INSERT INTO messages AS m (conversation_id, direction, is_note, channel, author_agent_id,
                           body_text, status, sent_at, created_at)
VALUES ($1, 'outbound', $2, $3, $4, $5, $6, CASE WHEN $2 THEN $7::timestamptz END, $7)
RETURNING {COLUMNS}
"""

GET_FOR_SEND = """
SELECT m.id, m.conversation_id, m.channel, m.body_text, m.status, m.is_note, m.created_at,
       c.contact_id, c.team_id, c.assignee_id, a.name AS author_name
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN agents a ON a.id = m.author_agent_id
WHERE m.id = $1
FOR UPDATE OF m
"""

# a delivery attempt begins: counted before the send, in its own transaction, so a send
# that dies half way still counts
BEGIN_ATTEMPT = """
UPDATE messages SET send_attempts = send_attempts + 1
WHERE id = $1 AND status = 'queued' AND NOT is_note
RETURNING send_attempts
"""

MARK_SENT = """
UPDATE messages SET status = 'sent', sent_at = $2 WHERE id = $1 AND status = 'queued'
"""

MARK_FAILED = """
UPDATE messages SET status = 'failed', error_code = $2, error_message = $3
WHERE id = $1 AND status = 'queued'
"""

# what the customer sees, oldest first: no notes, and no reply that could not be delivered
# (replies_only: just the agents' side, for the visitor's socket)
CUSTOMER_HISTORY = """
SELECT m.id, m.direction, m.body_text, m.created_at, a.name AS author_name
FROM messages m LEFT JOIN agents a ON a.id = m.author_agent_id
WHERE m.conversation_id = $1 AND m.id > $2 AND NOT m.is_note AND m.status <> 'failed'
  AND (NOT $4 OR m.direction = 'outbound')
ORDER BY m.id
LIMIT $3
"""

# the newest messages of a conversation, oldest first, for the agent's view
AGENT_VIEW = f"""
SELECT * FROM (
    SELECT {COLUMNS}, a.name AS author_name
    FROM messages m LEFT JOIN agents a ON a.id = m.author_agent_id
    WHERE m.conversation_id = $1
    ORDER BY m.id DESC
    LIMIT $2
) newest ORDER BY id
"""

QUEUED_BEFORE = """
SELECT id FROM messages WHERE status = 'queued' AND created_at < $1 ORDER BY created_at LIMIT $2
"""


async def find_by_external_id(
    conn: Connection, channel: str, external_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(FIND_BY_EXTERNAL_ID, channel, external_id)


async def insert_inbound(
    conn: Connection,
    conversation_id: int,
    channel: str,
    external_id: str,
    text: str,
    now: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT_INBOUND, conversation_id, channel, external_id, text, now)
    assert row is not None
    return row


async def insert_outbound(
    conn: Connection,
    conversation_id: int,
    channel: str,
    author_agent_id: int,
    text: str,
    now: datetime,
    *,
    is_note: bool = False,
) -> asyncpg.Record:
    status = "sent" if is_note else "queued"  # a note is never delivered anywhere
    row = await conn.fetchrow(
        INSERT_OUTBOUND, conversation_id, is_note, channel, author_agent_id, text, status, now
    )
    assert row is not None
    return row


async def get_for_send(conn: Connection, message_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_SEND, message_id)


async def begin_attempt(conn: Executor, message_id: int) -> int | None:
    """The number of this attempt, or None when the message is not waiting to be sent."""
    attempt = await conn.fetchval(BEGIN_ATTEMPT, message_id)
    return None if attempt is None else int(attempt)


async def mark_sent(conn: Connection, message_id: int, now: datetime) -> None:
    await conn.execute(MARK_SENT, message_id, now)


async def mark_failed(conn: Connection, message_id: int, code: str, message: str) -> None:
    await conn.execute(MARK_FAILED, message_id, code, message)


async def customer_history(
    conn: Executor, conversation_id: int, after_id: int, limit: int, *, replies_only: bool = False
) -> list[dict[str, Any]]:
    rows = await conn.fetch(CUSTOMER_HISTORY, conversation_id, after_id, limit, replies_only)
    return [dict(r) for r in rows]


async def agent_view(conn: Executor, conversation_id: int, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(AGENT_VIEW, conversation_id, limit)]


async def queued_before(conn: Executor, before: datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(QUEUED_BEFORE, before, limit)]
