"""The supervisor's e-mail about an SLA breach, sent by SMTP through the first mailbox that can
send. The sla_events row is the outbox: its attempts are counted there (as a reply's are), so
the notice goes once, is retried on a passing failure, and is given up on after
delivery.MAX_SEND_ATTEMPTS with the reason kept.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from channels.email.sender import send_mail
from contactcenter.conns import Conns
from contactcenter.domain.messages import DeliveryFailed
from contactcenter.services import mailboxes
from contactcenter.services.delivery import MAX_SEND_ATTEMPTS, Outcome, SendAgain
from contactcenter.store import sla as store

logger = logging.getLogger(__name__)

KIND_WORDS = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


def build_notice(event: Any, sender_address: str, sender_name: str | None) -> EmailMessage:
    kind = KIND_WORDS.get(event["kind"], event["kind"])
    mail = EmailMessage()
    mail["From"] = formataddr((sender_name or "", sender_address))
    mail["To"] = event["notify_email"]
    mail["Subject"] = f"SLA breached: {kind} overdue on conversation {event['conversation_id']}"
    mail["Date"] = format_datetime(event["fired_at"])
    mail["Message-ID"] = make_msgid(idstring=f"sla-{event['id']}")
    # RFC 3834: nobody's robot should answer this
    mail["Auto-Submitted"] = "auto-generated"
    lines = [
        f"The {kind} target of conversation {event['conversation_id']} was breached.",
        "",
        f"Subject:   {event['subject'] or '(none)'}",
        f"Channel:   {event['channel']}",
        f"Tier:      {event['tier']}",
        f"Policy:    {event['policy_name'] or '(deleted)'}",
        f"Due at:    {event['due_at'].isoformat()}",
        f"Fired at:  {event['fired_at'].isoformat()}",
        f"Team:      {event['team_name'] or '(none)'}",
        f"Assignee:  {event['assignee_name'] or '(nobody)'}",
        f"Priority:  {event['priority']}",
    ]
    escalation = event["escalation"] or {}
    if escalation:
        done = ", ".join(f"{key} {value}" for key, value in escalation.items() if key != "at")
        lines += ["", f"Escalation: {done}"]
    mail.set_content("\n".join(lines) + "\n")
    return mail


async def send_sla_notice(conns: Conns, event_id: int) -> Outcome:
    """Send the breach's notice once; raise SendAgain on a passing failure while attempts
    remain."""
    attempt = await store.begin_notice_attempt(conns.db, event_id)
    if attempt is None:
        return Outcome.SKIPPED
    async with conns.db.acquire() as conn, conn.transaction():
        event = await store.event_for_notice(conn, event_id)
        if event is None or event["notified_at"] is not None or event["notify_error"]:
            return Outcome.SKIPPED
        failure = await _try(conns, event, attempt)
        if failure is None:
            await store.mark_notified(conn, event_id, conns.clock())
            outcome = Outcome.SENT
        elif not failure.permanent and attempt < MAX_SEND_ATTEMPTS:
            raise SendAgain(attempt, failure)
        else:
            await store.mark_notice_failed(conn, event_id, f"{failure.code}: {failure.message}")
            outcome = Outcome.FAILED
    logger.info(
        "sla notice",
        extra={"event_id": event_id, "outcome": outcome, "attempt": attempt},
    )
    return outcome


async def _try(conns: Conns, event: Any, attempt: int) -> DeliveryFailed | None:
    if attempt > MAX_SEND_ATTEMPTS:
        return DeliveryFailed(
            "too_many_attempts", f"gave up after {MAX_SEND_ATTEMPTS} attempts", permanent=True
        )
    mailbox = await mailboxes.first_sending(conns)
    if mailbox is None or mailbox.smtp is None:
        return DeliveryFailed(
            "no_smtp_mailbox", "no enabled mailbox can send by SMTP", permanent=True
        )
    try:
        await send_mail(mailbox.smtp, build_notice(event, mailbox.address, mailbox.display_name))
    except DeliveryFailed as failure:
        return failure
    return None
