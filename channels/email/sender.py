"""Agent replies out by SMTP: multipart text + HTML, threaded, with our stored Message-ID.

Failures are classified as the SMTP reply says (RFC 5321): a 4xx or a dropped connection
passes (the send job retries with backoff), a 5xx is final and its words are kept for the agent.
"""

from __future__ import annotations

import html
import logging
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import aiosmtplib

from contactcenter.conns import Conns
from contactcenter.domain.mailboxes import Security, ServerAccount
from contactcenter.domain.messages import DeliveryFailed, OutboundMessage
from contactcenter.services.email_replies import ReplyEnvelope, reply_envelope

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30


def build_mail(envelope: ReplyEnvelope, message: OutboundMessage) -> EmailMessage:
    mailbox = envelope.mailbox
    mail = EmailMessage()
    mail["From"] = formataddr((mailbox.display_name or "", mailbox.address))
    mail["To"] = envelope.to
    mail["Subject"] = envelope.subject
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = envelope.message_id
    if envelope.in_reply_to:
        mail["In-Reply-To"] = envelope.in_reply_to
    if envelope.references:
        mail["References"] = " ".join(envelope.references)
    if message.automatic:
        # RFC 3834: other robots must not answer it (a rule's answer to a mail is a reply; a
        # greeting that starts a thread is generated)
        mail["Auto-Submitted"] = "auto-replied" if envelope.in_reply_to else "auto-generated"
    mail.set_content(message.text)
    mail.add_alternative(message.html or _as_html(message.text), subtype="html")
    return mail


def _as_html(text: str) -> str:
    paragraphs = "".join(
        f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>"
        for block in text.split("\n\n")
        if block.strip()
    )
    return f'<!DOCTYPE html><html><body><div dir="auto">{paragraphs}</div></body></html>'


class EmailSender:
    def __init__(self, conns: Conns) -> None:
        self._conns = conns

    async def send(self, message: OutboundMessage) -> None:
        envelope = await reply_envelope(self._conns, message.message_id)
        smtp = envelope.mailbox.smtp
        assert smtp is not None  # reply_envelope refuses a mailbox without SMTP
        response = await send_mail(smtp, build_mail(envelope, message))
        logger.info(
            "mail sent", extra={"message_id": message.message_id, "smtp_response": response}
        )


async def send_mail(smtp: ServerAccount, mail: EmailMessage) -> str:
    """Send one mail through the account; the server's answer, or DeliveryFailed, permanent
    when the server said no for good (5xx)."""
    try:
        _, response = await aiosmtplib.send(
            mail,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.user,
            password=smtp.password,
            use_tls=smtp.security is Security.SSL,
            # True, not None: a server that will not upgrade is refused, never used plain
            start_tls=smtp.security is Security.STARTTLS,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPRecipientsRefused as refused:
        codes = [r.code for r in refused.recipients]
        words = "; ".join(f"{r.code} {r.message}" for r in refused.recipients)
        raise DeliveryFailed(
            f"smtp_{codes[0]}" if codes else "smtp_refused",
            words,
            permanent=all(code // 100 == 5 for code in codes),
        ) from refused
    except aiosmtplib.SMTPResponseException as error:
        raise DeliveryFailed(
            f"smtp_{error.code}",
            f"{error.code} {error.message}",
            permanent=error.code // 100 == 5,
        ) from error
    except (aiosmtplib.SMTPException, OSError) as error:
        # could not connect, dropped, timed out: the mail may be tried again
        raise DeliveryFailed(
            "smtp_unavailable", str(error) or type(error).__name__, permanent=False
        ) from error
    return str(response)
