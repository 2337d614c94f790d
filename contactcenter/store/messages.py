"""messages: inbound and outbound, with their delivery status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.email import AttachmentData, EmailDetails

COLUMNS = """
m.id, m.conversation_id, m.direction, m.is_note, m.channel, m.external_id, m.author_agent_id,
m.body_text, m.status, m.error_code, m.error_message, m.sent_at, m.created_at
"""

FIND_BY_EXTERNAL_ID = f"""
SELECT {COLUMNS} FROM messages m WHERE m.channel = $1 AND m.external_id = $2
"""

INSERT_INBOUND = f"""
INSERT INTO messages AS m (conversation_id, direction, channel, external_id, body_text, status,
                           created_at, body_html, body_full, is_automatic, email_meta)
VALUES ($1, 'inbound', $2, $3, $4, 'received', $5, $6, $7, $8, $9)
RETURNING {COLUMNS}
"""

INSERT_ATTACHMENTS = """
INSERT INTO attachments (message_id, filename, content_type, size, content, content_id, inline,
                         url)
SELECT $1, a.filename, a.content_type, a.size, a.content, a.content_id, a.inline, a.url
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::text[], $7::boolean[],
            $8::text[])
     AS a (filename, content_type, size, content, content_id, inline, url)
"""

# the conversation a mail answers: the first of its Message-IDs (in the order given) that is
# a mail we stored or sent, and whether that one was ours (sent only to the customer)
CONVERSATION_BY_EMAIL_IDS = """
SELECT m.conversation_id, m.direction = 'outbound' AS ours
FROM unnest($1::text[]) WITH ORDINALITY AS given (message_id, position)
JOIN messages m ON m.channel = 'email' AND m.external_id = given.message_id
ORDER BY given.position
LIMIT 1
"""

# the text a routing rule reads: the customer's latest message in the conversation
LATEST_INBOUND_TEXT = """
SELECT body_text FROM messages
WHERE conversation_id = $1 AND direction = 'inbound' AND NOT is_automatic
ORDER BY id DESC
LIMIT 1
"""

# the agent who last served the customer: the author of the latest reply sent to them, on
# any channel
LAST_AGENT_FOR_CONTACT = """
SELECT m.author_agent_id FROM conversations c
JOIN messages m ON m.conversation_id = c.id
WHERE c.contact_id = $1 AND m.direction = 'outbound' AND NOT m.is_note
  AND m.author_agent_id IS NOT NULL
ORDER BY m.id DESC
LIMIT 1
"""

GET_FOR_EMAIL = "SELECT id, conversation_id, external_id FROM messages WHERE id = $1"

# a bounce answers one of our mails: it was not delivered after all
MARK_BOUNCED = """
UPDATE messages SET status = 'failed', error_code = 'bounced', error_message = $2
WHERE channel = 'email' AND external_id = $1 AND direction = 'outbound'
RETURNING id, conversation_id
"""

# what an e-mail reply needs to thread: the Message-IDs before it (oldest first), and who
# wrote the customer's mails; mails sent by machines (auto-replies, bounces) are left out:
# a reply never goes to a mailer-daemon
EMAIL_THREAD = """
SELECT m.external_id, m.direction, m.email_meta
FROM messages m
WHERE m.conversation_id = $1 AND m.channel = 'email' AND m.external_id IS NOT NULL
  AND NOT m.is_note AND NOT m.is_automatic AND m.id < $2
ORDER BY m.id
"""

INSERT_OUTBOUND = f"""
INSERT INTO messages AS m (conversation_id, direction, is_note, channel, author_agent_id,
                           body_text, status, sent_at, created_at, external_id, is_automatic,
                           author_rule_id, body_html)
VALUES ($1, 'outbound', $2, $3, $4, $5, $6, CASE WHEN $2 THEN $7::timestamptz END, $7, $8, $9,
        $10, $11)
RETURNING {COLUMNS}
"""

GET_FOR_SEND = """
SELECT m.id, m.conversation_id, m.channel, m.body_text, m.body_html, m.status, m.is_note,
       m.created_at, m.is_automatic, m.author_agent_id, c.contact_id, c.team_id, c.assignee_id,
       a.name AS author_name
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN agents a ON a.id = m.author_agent_id
WHERE m.id = $1
FOR NO KEY UPDATE OF m
"""

# a delivery attempt begins: counted before the send, in its own transaction, so a send
# that dies half way still counts
BEGIN_ATTEMPT = """
UPDATE messages SET send_attempts = send_attempts + 1
WHERE id = $1 AND status = 'queued' AND NOT is_note
RETURNING send_attempts
"""

MARK_SENT = """
UPDATE messages SET status = 'sent', sent_at = $2, external_id = coalesce($3, external_id),
                    segments = $4
WHERE id = $1 AND status = 'queued'
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
    email: EmailDetails | None = None,
    *,
    automatic: bool = False,
    attachments: tuple[AttachmentData, ...] = (),
) -> asyncpg.Record:
    row = await conn.fetchrow(
        INSERT_INBOUND,
        conversation_id,
        channel,
        external_id,
        text,
        now,
        email.html if email else None,
        email.full_text if email else None,
        automatic,
        _email_meta(email),
    )
    assert row is not None
    if attachments:
        await _insert_attachments(conn, row["id"], attachments)
    return row


def _email_meta(email: EmailDetails | None) -> dict[str, Any] | None:
    if email is None:
        return None
    return {
        "from": email.from_address,
        "reply_to": email.reply_to,
        "to": list(email.to),
        "cc": list(email.cc),
    }


async def _insert_attachments(
    conn: Connection, message_id: int, attachments: tuple[AttachmentData, ...]
) -> None:
    await conn.execute(
        INSERT_ATTACHMENTS,
        message_id,
        [a.filename for a in attachments],
        [a.content_type for a in attachments],
        [a.size for a in attachments],
        [a.content for a in attachments],
        [a.content_id for a in attachments],
        [a.inline for a in attachments],
        [a.url for a in attachments],
    )


async def conversation_by_email_ids(
    conn: Executor, message_ids: tuple[str, ...]
) -> asyncpg.Record | None:
    """(conversation_id, ours) of the first known Message-ID, or None."""
    if not message_ids:
        return None
    return await conn.fetchrow(CONVERSATION_BY_EMAIL_IDS, list(message_ids))


async def get_for_email(conn: Executor, message_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_EMAIL, message_id)


async def mark_bounced(conn: Executor, message_id: str, reason: str) -> asyncpg.Record | None:
    return await conn.fetchrow(MARK_BOUNCED, message_id, reason)


async def email_thread(
    conn: Executor, conversation_id: int, except_id: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(EMAIL_THREAD, conversation_id, except_id))


async def insert_outbound(
    conn: Connection,
    conversation_id: int,
    channel: str,
    author_agent_id: int | None,
    text: str,
    now: datetime,
    *,
    is_note: bool = False,
    external_id: str | None = None,
    author_rule_id: int | None = None,
    automatic: bool = False,
    html: str | None = None,
) -> asyncpg.Record:
    """An agent's reply or note, or an automatic message: a rule's auto-reply
    (author_rule_id) or care's (automatic), with its own HTML when it has one."""
    status = "sent" if is_note else "queued"  # a note is never delivered anywhere
    row = await conn.fetchrow(
        INSERT_OUTBOUND,
        conversation_id,
        is_note,
        channel,
        author_agent_id,
        text,
        status,
        now,
        external_id,
        automatic or author_rule_id is not None,
        author_rule_id,
        html,
    )
    assert row is not None
    return row


async def get_for_send(conn: Connection, message_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_FOR_SEND, message_id)


async def begin_attempt(conn: Executor, message_id: int) -> int | None:
    """The number of this attempt, or None when the message is not waiting to be sent."""
    attempt = await conn.fetchval(BEGIN_ATTEMPT, message_id)
    return None if attempt is None else int(attempt)


async def mark_sent(
    conn: Connection,
    message_id: int,
    now: datetime,
    *,
    external_id: str | None = None,
    segments: int | None = None,
) -> None:
    await conn.execute(MARK_SENT, message_id, now, external_id, segments)


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


# a provider's report moves a message forward only: queued < sent < a final state (delivered,
# undelivered, failed), and the first final state stays
_RANK = "CASE {0} WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END"
ADVANCE_STATUS = f"""
UPDATE messages m SET status = $3, error_code = coalesce($4, m.error_code)
FROM conversations c
JOIN sms_numbers n ON n.id = c.sms_number_id
WHERE c.id = m.conversation_id AND n.account_sid = $6
  AND m.channel = $1 AND m.direction = 'outbound'
  -- by our id when the callback carries it (then the row lock makes a report that outran
  -- the send's commit wait for it), else by the provider's
  AND (m.id = $5 AND (m.external_id = $2 OR m.external_id IS NULL)
       OR $5::bigint IS NULL AND m.external_id = $2)
  AND {_RANK.format("m.status")} < {_RANK.format("$3::text")}
RETURNING m.id, m.conversation_id, m.status, m.author_agent_id, m.body_text
"""

# the same reply again on another channel (a failed SMS answered by e-mail), once
INSERT_FALLBACK = """
INSERT INTO messages (conversation_id, direction, channel, author_agent_id, body_text, status,
                      external_id, fallback_of, created_at)
SELECT conversation_id, 'outbound', $2, author_agent_id, body_text, 'queued', $3, id, $4
FROM messages WHERE id = $1
ON CONFLICT (fallback_of) WHERE fallback_of IS NOT NULL DO NOTHING
RETURNING id
"""


async def advance_status(
    conn: Executor,
    channel: str,
    external_id: str,
    status: str,
    error_code: str | None,
    *,
    message_id: int | None,
    account_sid: str,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        ADVANCE_STATUS, channel, external_id, status, error_code, message_id, account_sid
    )


async def insert_fallback(
    conn: Executor, message_id: int, channel: str, external_id: str | None, now: datetime
) -> int | None:
    found = await conn.fetchval(INSERT_FALLBACK, message_id, channel, external_id, now)
    return None if found is None else int(found)


async def latest_inbound_text(conn: Executor, conversation_id: int) -> str:
    return str(await conn.fetchval(LATEST_INBOUND_TEXT, conversation_id) or "")


async def last_agent_for_contact(conn: Executor, contact_id: int) -> int | None:
    value = await conn.fetchval(LAST_AGENT_FOR_CONTACT, contact_id)
    return None if value is None else int(value)
