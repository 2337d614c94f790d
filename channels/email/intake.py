"""One raw mail into the unified ingest: parse, thread, store (or quarantine), checkpoint.

Used alike by the IMAP listener and the raw-mail webhook.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from channels.email.parse import EmailParseError, ParsedEmail, parse_email
from contactcenter.conns import Conns
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


async def take(
    conns: Conns,
    mailbox: Mailbox | None,
    raw: bytes,
    *,
    uidvalidity: int | None = None,
    uid: int | None = None,
) -> Taken:
    """Store one mail (the listener's UID advances in the same transaction). Without a
    mailbox (the webhook), the one the mail was written to is used, else the first."""
    try:
        parsed = await _parse(raw, conns.settings.max_attachment_bytes)
    except EmailParseError as error:
        quarantine_id = await email_intake.quarantine(
            conns,
            mailbox.id if mailbox else None,
            raw,
            str(error),
            uidvalidity=uidvalidity,
            uid=uid,
        )
        return Taken(None, quarantine_id)
    if mailbox is None:
        mailbox = await mailboxes.for_addresses(
            conns, [a.address for a in (*parsed.to, *parsed.cc)]
        )
    inbound = to_inbound(parsed, raw, mailbox)
    checkpoint = (
        email_intake.checkpoint_to(mailbox.id, uidvalidity, uid) if mailbox is not None else None
    )
    return Taken(await ingest(conns, inbound, also=checkpoint))


async def _parse(raw: bytes, max_attachment_bytes: int) -> ParsedEmail:
    # off the event loop: parsing is CPU work, and a hostile mail can make it seconds of it
    return await asyncio.to_thread(parse_email, raw, max_attachment_bytes=max_attachment_bytes)


def _answers(parsed: ParsedEmail) -> tuple[str, ...]:
    """The Message-IDs this mail answers, most telling first: In-Reply-To, then References
    from the newest back."""
    ordered = [parsed.in_reply_to] if parsed.in_reply_to else []
    ordered.extend(reversed(parsed.references))
    return tuple(dict.fromkeys(ordered))


def to_inbound(parsed: ParsedEmail, raw: bytes, mailbox: Mailbox | None) -> InboundMessage:
    sender = parsed.from_address
    from_us = sender is not None and mailbox is not None and sender.address == mailbox.address
    bounce = parsed.bounce
    details = EmailDetails(
        message_id=parsed.message_id or synthetic_message_id(raw),
        answers=_answers(parsed),
        from_address=sender.address if sender else None,
        reply_to=parsed.reply_to[0].address if parsed.reply_to else None,
        to=tuple(a.address for a in parsed.to),
        cc=tuple(a.address for a in parsed.cc),
        html=parsed.html_sanitized,
        full_text=parsed.text if parsed.text_folded != parsed.text else None,
        attachments=tuple(
            AttachmentData(
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                content=a.content,
                content_id=a.content_id,
                inline=a.inline,
            )
            for a in parsed.attachments
        ),
        # machines writing (and our own address, looping back) never open work
        automatic=parsed.auto_submitted or parsed.is_bounce or from_us,
        bounced_message_id=bounce.original_message_id if bounce else None,
        bounce_reason=(bounce.diagnostic or bounce.status) if bounce else None,
        mailbox_id=mailbox.id if mailbox else None,
    )
    return InboundMessage(
        channel=Channel.EMAIL,
        external_id=details.message_id,
        text=parsed.text_folded,
        identities=(Identity(IdentityKind.EMAIL, sender.address),) if sender else (),
        contact_name=sender.name if sender else None,
        subject=parsed.subject or None,
        email=details,
    )
