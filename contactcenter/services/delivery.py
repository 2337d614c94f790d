"""Delivering one outbound message through its channel's sender.

The message row stays locked while the sender works, so two runs of the same send job (arq is
at least once) cannot both deliver it: the second waits, then finds it sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, MessageStatus
from contactcenter.domain.messages import DeliveryFailed, OutboundMessage, Sender
from contactcenter.store import conversations, messages

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to send (gone, a note, or sent already)


async def deliver(
    conns: Conns, message_id: int, senders: Mapping[Channel, Sender], *, last_try: bool
) -> Outcome:
    """Send it; on a transient failure raise DeliveryFailed (the job retries) unless last_try."""
    async with conns.db.acquire() as conn, conn.transaction():
        row = await messages.get_for_send(conn, message_id)
        if row is None or row["is_note"] or row["status"] != MessageStatus.QUEUED:
            return Outcome.SKIPPED
        channel = Channel(row["channel"])
        outbound = OutboundMessage(
            message_id=row["id"],
            conversation_id=row["conversation_id"],
            contact_id=row["contact_id"],
            channel=channel,
            text=row["body_text"],
            author_name=row["author_name"],
            created_at=row["created_at"],
        )
        sender = senders.get(channel)
        try:
            if sender is None:
                raise DeliveryFailed(
                    "channel_unavailable", f"no sender is configured for {channel}", permanent=True
                )
            await sender.send(outbound)
        except DeliveryFailed as failure:
            if not (failure.permanent or last_try):
                raise
            await messages.mark_failed(conn, message_id, failure.code, failure.message)
            outcome = Outcome.FAILED
        else:
            now = conns.clock()
            await messages.mark_sent(conn, message_id, now)
            # the first reply that actually reached the customer is the first response
            await conversations.mark_first_response(conn, row["conversation_id"], now)
            outcome = Outcome.SENT
    logger.info("delivery", extra={"message_id": message_id, "outcome": outcome})
    await events.publish_agent_event(
        conns,
        "message.status_changed",
        conversation_id=row["conversation_id"],
        team_id=row["team_id"],
        assignee_id=row["assignee_id"],
        data={"message_id": message_id, "status": outcome},
    )
    return outcome
