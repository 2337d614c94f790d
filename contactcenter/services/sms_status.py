"""Delivery reports for SMS, and the fallback to e-mail when an SMS fails for good."""

from __future__ import annotations

import logging

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.domain.email import new_message_id
from contactcenter.domain.enums import Channel, MessageStatus
from contactcenter.store import contacts, conversations, mailboxes, messages

logger = logging.getLogger(__name__)

# Twilio's statuses, in ours
_STATUSES = {
    "accepted": MessageStatus.QUEUED,
    "scheduled": MessageStatus.QUEUED,
    "queued": MessageStatus.QUEUED,
    "sending": MessageStatus.QUEUED,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
_FINAL_FAILURES = (MessageStatus.UNDELIVERED, MessageStatus.FAILED)


async def apply(
    conns: Conns,
    message_sid: str,
    twilio_status: str,
    error_code: str | None,
    *,
    message_id: int | None,
    account_sid: str,
) -> None:
    """Move the message forward to what Twilio reports; a late or repeated report (callbacks
    arrive out of order) changes nothing."""
    status = _STATUSES.get(twilio_status.lower())
    if status is None:
        logger.info("unknown SMS status ignored", extra={"status": twilio_status[:40]})
        return
    code = f"twilio_{error_code}" if error_code and error_code.isdigit() else None
    row = await messages.advance_status(
        conns.db,
        Channel.SMS,
        message_sid,
        status,
        code,
        message_id=message_id,
        account_sid=account_sid,
    )
    if row is None:
        return
    conversation = await conversations.get(conns.db, row["conversation_id"])
    assert conversation is not None
    await events.publish_agent_event(
        conns,
        "message.status_changed",
        conversation_id=row["conversation_id"],
        team_id=conversation["team_id"],
        assignee_id=conversation["assignee_id"],
        data={"message_id": row["id"], "status": status, "error_code": code},
    )
    if status in _FINAL_FAILURES:
        await fall_back_to_email(conns, row["id"])


async def fall_back_to_email(conns: Conns, message_id: int) -> int | None:
    """When enabled, a reply whose SMS failed for good goes again by e-mail to a customer with
    a known address; the agent sees the e-mail copy, pointing at the failed SMS."""
    if not conns.settings.sms_fallback_to_email:
        return None
    async with conns.db.acquire() as conn, conn.transaction():
        failed = await messages.get_for_email(conn, message_id)
        if failed is None:
            return None
        conversation = await conversations.get(conn, failed["conversation_id"])
        assert conversation is not None
        if await contacts.email_address(conn, conversation["contact_id"]) is None:
            return None
        mailbox = await mailboxes.first_enabled(conn)
        if mailbox is None:
            return None
        copy_id = await messages.insert_fallback(
            conn, message_id, Channel.EMAIL, new_message_id(mailbox["address"]), conns.clock()
        )
    if copy_id is not None:
        logger.info("SMS fell back to e-mail", extra={"message_id": message_id, "copy": copy_id})
        await jobs.enqueue_send(conns, copy_id)
        await events.publish_agent_event(
            conns,
            "message.created",
            conversation_id=conversation["id"],
            team_id=conversation["team_id"],
            assignee_id=conversation["assignee_id"],
            data={"message_id": copy_id, "direction": "outbound", "fallback_of": message_id},
        )
    return copy_id
