"""Delivering one outbound message through its channel's sender.

The message row stays locked while the sender works, so two runs of the same send job (arq is
at least once) cannot both deliver it: the second waits, then finds it sent. Attempts are
counted in PostgreSQL, so a message that keeps failing is marked failed after
MAX_SEND_ATTEMPTS however often the reconciler re-enqueues it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, MessageStatus
from contactcenter.domain.messages import DeliveryFailed, OutboundMessage, Sender, SendReceipt
from contactcenter.services import sla, sms_status
from contactcenter.store import conversations, messages

logger = logging.getLogger(__name__)


# attempts at one message before it is marked failed, however many times it is re-enqueued
MAX_SEND_ATTEMPTS = 6


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to send (gone, a note, or sent already)


class SendAgain(Exception):
    """The send failed for a passing reason; try again later (the job picks the delay)."""

    def __init__(self, attempt: int, failure: DeliveryFailed) -> None:
        super().__init__(failure.message)
        self.attempt = attempt
        self.failure = failure


async def deliver(conns: Conns, message_id: int, senders: Mapping[Channel, Sender]) -> Outcome:
    """Send it once; raise SendAgain on a passing failure while attempts remain."""
    attempt = await messages.begin_attempt(conns.db, message_id)
    if attempt is None:
        return Outcome.SKIPPED
    async with conns.db.acquire() as conn, conn.transaction():
        row = await messages.get_for_send(conn, message_id)
        if row is None or row["status"] != MessageStatus.QUEUED:
            return Outcome.SKIPPED  # another run of this job got there first
        receipt: SendReceipt | None = None
        sla_moved = None
        if attempt > MAX_SEND_ATTEMPTS:
            failure: DeliveryFailed | None = _gave_up()
        else:
            receipt, failure = await _attempt(row, senders)
        if failure is None:
            now = conns.clock()
            await messages.mark_sent(
                conn,
                message_id,
                now,
                external_id=receipt.external_id if receipt else None,
                segments=receipt.segments if receipt else None,
            )
            if row["author_agent_id"] is not None:
                # an agent's reply that actually reached the customer answers them (an
                # auto-reply does not): the first response, and the next-response clock
                await conversations.mark_first_response(conn, row["conversation_id"], now)
                sla_moved = await sla.on_reply_sent(conn, row["conversation_id"], now)
            outcome = Outcome.SENT
        elif not failure.permanent and attempt < MAX_SEND_ATTEMPTS:
            raise SendAgain(attempt, failure)
        else:
            await messages.mark_failed(conn, message_id, failure.code, failure.message)
            outcome = Outcome.FAILED
    await sla.arm(conns, row["conversation_id"], sla_moved)
    if outcome is Outcome.FAILED and row["channel"] == Channel.SMS:
        await sms_status.fall_back_to_email(conns, message_id)
    logger.info(
        "delivery",
        extra={
            "message_id": message_id,
            "outcome": outcome,
            "attempt": attempt,
            "error_code": failure.code if failure else None,
        },
    )
    await events.publish_agent_event(
        conns,
        "message.status_changed",
        conversation_id=row["conversation_id"],
        team_id=row["team_id"],
        assignee_id=row["assignee_id"],
        data={
            "message_id": message_id,
            "status": outcome,
            **({"error_code": failure.code, "error": failure.message} if failure else {}),
        },
    )
    return outcome


def _gave_up() -> DeliveryFailed:
    return DeliveryFailed(
        "too_many_attempts", f"gave up after {MAX_SEND_ATTEMPTS} attempts", permanent=True
    )


async def _attempt(
    row: Any, senders: Mapping[Channel, Sender]
) -> tuple[SendReceipt | None, DeliveryFailed | None]:
    """One try through the channel's sender: its receipt, or why it did not go out."""
    channel = Channel(row["channel"])
    sender = senders.get(channel)
    if sender is None:
        return None, DeliveryFailed(
            "channel_unavailable", f"no sender is configured for {channel}", permanent=True
        )
    try:
        receipt = await sender.send(
            OutboundMessage(
                message_id=row["id"],
                conversation_id=row["conversation_id"],
                contact_id=row["contact_id"],
                channel=channel,
                text=row["body_text"],
                author_name=row["author_name"],
                created_at=row["created_at"],
                automatic=row["is_automatic"],
                html=row["body_html"],
            )
        )
    except DeliveryFailed as failure:
        return None, failure
    return receipt, None
