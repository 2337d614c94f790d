"""What an agent's e-mail reply needs to reach the customer in the same thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.domain.email import (
    conversation_token,
    new_message_id,
    opening_subject,
    reply_subject,
)
from contactcenter.domain.enums import Channel
from contactcenter.domain.mailboxes import Mailbox
from contactcenter.domain.messages import DeliveryFailed
from contactcenter.services import mailboxes
from contactcenter.store import contacts, conversations, messages
from contactcenter.store import mailboxes as mailbox_store

# how many earlier Message-IDs a References header carries (the first and the latest ones)
MAX_REFERENCES = 20
# the subject of a first mail in a conversation that has none (one the customer began by SMS
# or web chat)
NO_SUBJECT = "Your message to us"


@dataclass(frozen=True)
class ReplyEnvelope:
    mailbox: Mailbox
    message_id: str  # ours: stored with the reply when it was written
    to: str
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]


async def reply_envelope(conns: Conns, message_id: int) -> ReplyEnvelope:
    """From, To, Subject (with our token) and the threading headers of reply `message_id`."""
    reply = await messages.get_for_email(conns.db, message_id)
    if reply is None or reply["external_id"] is None:
        raise DeliveryFailed("no_message_id", "the reply has no Message-ID", permanent=True)
    conversation = await conversations.get(conns.db, reply["conversation_id"])
    assert conversation is not None
    mailbox = None
    if conversation["mailbox_id"] is not None:
        mailbox = await mailboxes.load(conns, conversation["mailbox_id"])
    if mailbox is None:
        mailbox = await mailboxes.for_addresses(conns, [])
    if mailbox is None or mailbox.smtp is None:
        raise DeliveryFailed(
            "no_mailbox", "no mailbox with an SMTP server is configured", permanent=True
        )

    thread = await messages.email_thread(conns.db, conversation["id"], message_id)
    to = await _recipient(conns, conversation["contact_id"], thread)
    if to is None:
        raise DeliveryFailed(
            "no_recipient", "the customer has no e-mail address to answer", permanent=True
        )

    ids = [row["external_id"] for row in thread]
    references = ids if len(ids) <= MAX_REFERENCES else ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    inbound_ids = [row["external_id"] for row in thread if row["direction"] == "inbound"]
    token = conversation_token(conns.settings.secret, conversation["id"])
    return ReplyEnvelope(
        mailbox=mailbox,
        message_id=reply["external_id"],
        to=to,
        # a mail that starts the thread (a greeting) is no reply
        subject=(reply_subject if ids else opening_subject)(
            conversation["subject"] or NO_SUBJECT, token
        ),
        in_reply_to=inbound_ids[-1] if inbound_ids else (ids[-1] if ids else None),
        references=tuple(references),
    )


async def _recipient(conns: Conns, contact_id: int, thread: list[asyncpg.Record]) -> str | None:
    """Where the answer goes: where the customer's latest own mail asked (its Reply-To, or its
    From), and otherwise their address. A mail in the thread from anyone else never decides."""
    theirs = await contacts.email_addresses(conns.db, contact_id)
    for earlier in reversed(thread):
        meta = earlier["email_meta"] or {}
        sender = meta.get("from")
        if earlier["direction"] == "inbound" and sender in theirs:
            return str(meta.get("reply_to") or sender)
    return theirs[0] if theirs else None


async def outbound_message_id(
    conn: Any, conversation: asyncpg.Record, channel: Channel | None = None
) -> str | None:
    """A mail's Message-ID is ours to choose, and known before it is sent: replies to it and
    bounces of it find this message by it. None for a message on another `channel` (by
    default the conversation's)."""
    if (channel or conversation["channel"]) != Channel.EMAIL:
        return None
    mailbox = None
    if conversation["mailbox_id"] is not None:
        mailbox = await mailbox_store.get(conn, conversation["mailbox_id"])
    mailbox = mailbox or await mailbox_store.first_enabled(conn)
    return new_message_id(mailbox["address"] if mailbox else "")
