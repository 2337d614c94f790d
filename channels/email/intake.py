"""One raw mail into the unified ingest: parse, thread, store (or quarantine), checkpoint.

Used alike by the IMAP listener and the raw-mail webhook.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from channels.email.parse import EmailParseError, ParsedEmail, parse_email
from contactcenter.conns import Conns
from contactcenter.db import database_away
from contactcenter.domain.email import AttachmentData, EmailDetails, synthetic_message_id
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.mailboxes import Mailbox
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import email_intake, mailboxes
from contactcenter.services.ingest import IngestResult, ingest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taken:
    result: IngestResult | None  # None when the mail was quarantined
    quarantine_id: int | None = None


def passing(error: BaseException) -> bool:
    """The database or Redis is away: the mail stays where it is and is tried again."""
    return isinstance(error, OSError | RedisError) or database_away(error)


async def take(
    conns: Conns,
    mailbox: Mailbox | None,
    raw: bytes,
    *,
    uidvalidity: int | None = None,
    uid: int | None = None,
) -> Taken:
    """Store one mail (the listener's UID advances in the same transaction). Without a
    mailbox (the webhook), the one the mail was written to is used, else the first.

    A mail that cannot be read or stored is quarantined, and intake goes on past it: one bad
    mail never blocks a mailbox. Only an outage (`passing`) is raised, to try again.
    """
    try:
        parsed = await _parse(raw, conns.settings.max_attachment_bytes)
        if mailbox is None:
            mailbox = await mailboxes.for_addresses(
                conns, [a.address for a in (*parsed.to, *parsed.cc)]
            )
        inbound = to_inbound(parsed, raw, mailbox)
        checkpoint = email_intake.checkpoint_to(mailbox.id, uidvalidity, uid) if mailbox else None
        return Taken(await ingest(conns, inbound, also=checkpoint))
    except Exception as error:  # a mail we cannot read or store: kept aside, never a blocker
        if passing(error):
            raise
        if not isinstance(error, EmailParseError):
            logger.exception("mail not stored; quarantined", extra={"uid": uid})
        reason = f"{type(error).__name__}: {error}"[:1000]
        quarantine_id = await email_intake.quarantine(
            conns,
            mailbox.id if mailbox else None,
            raw,
            reason,
            uidvalidity=uidvalidity,
            uid=uid,
        )
        return Taken(None, quarantine_id)


async def _parse(raw: bytes, max_attachment_bytes: int) -> ParsedEmail:
    # off the event loop: parsing is CPU work, and a hostile mail can make it seconds of it
    return await asyncio.to_thread(parse_email, raw, max_attachment_bytes=max_attachment_bytes)


def _answers(parsed: ParsedEmail) -> tuple[str, ...]:
    """The Message-IDs this mail answers, most telling first: In-Reply-To, then References
    from the newest back."""
    ordered = [parsed.in_reply_to] if parsed.in_reply_to else []
    ordered.extend(reversed(parsed.references))
    return tuple(dict.fromkeys(ordered))


# longer ids are replaced by the mail's hash: PostgreSQL's index cannot hold any length
MAX_MESSAGE_ID = 500
# a subject is for people; a megabyte of one is an attack on something
MAX_SUBJECT = 500


def _clean(value: str | None) -> str | None:
    """Text PostgreSQL can store: no NUL (a mail may carry any byte)."""
    return None if value is None else value.replace("\x00", "")


def _message_id(parsed: ParsedEmail, raw: bytes) -> str:
    found = _clean(parsed.message_id)
    if not found or len(found) > MAX_MESSAGE_ID:
        return synthetic_message_id(raw)
    return found


def to_inbound(parsed: ParsedEmail, raw: bytes, mailbox: Mailbox | None) -> InboundMessage:
    sender = parsed.from_address
    sender_address = _clean(sender.address) if sender else None
    from_us = (
        sender_address is not None and mailbox is not None and sender_address == mailbox.address
    )
    bounce = parsed.bounce
    details = EmailDetails(
        message_id=_message_id(parsed, raw),
        answers=tuple(
            answer
            for answer in map(_clean, _answers(parsed))
            if answer and len(answer) <= MAX_MESSAGE_ID
        ),
        from_address=sender_address,
        reply_to=_clean(parsed.reply_to[0].address) if parsed.reply_to else None,
        to=tuple(a for a in (_clean(a.address) for a in parsed.to) if a),
        cc=tuple(a for a in (_clean(a.address) for a in parsed.cc) if a),
        html=_clean(parsed.html_sanitized),
        full_text=_clean(parsed.text) if parsed.text_folded != parsed.text else None,
        attachments=tuple(
            AttachmentData(
                filename=_clean(a.filename),
                content_type=_clean(a.content_type) or "application/octet-stream",
                size=a.size,
                content=a.content,
                content_id=_clean(a.content_id),
                inline=a.inline,
            )
            for a in parsed.attachments
        ),
        # machines writing (and our own address, looping back) never open work
        automatic=parsed.auto_submitted or parsed.is_bounce or from_us,
        bounced_message_id=_clean(bounce.original_message_id) if bounce else None,
        bounce_reason=_clean(bounce.diagnostic or bounce.status) if bounce else None,
        mailbox_id=mailbox.id if mailbox else None,
    )
    return InboundMessage(
        channel=Channel.EMAIL,
        external_id=details.message_id,
        text=_clean(parsed.text_folded) or "",
        identities=(Identity(IdentityKind.EMAIL, sender_address),) if sender_address else (),
        contact_name=_clean(sender.name) if sender else None,
        subject=(_clean(parsed.subject) or "")[:MAX_SUBJECT] or None,
        email=details,
    )
