"""The unified ingest every channel calls: one transaction, then one enqueue.

In the transaction: the contact is resolved (or created) by identity, the conversation found
(or opened), the message inserted once per (channel, external id), and routing recorded as
due. After the commit the route job is enqueued with a deterministic id; if that enqueue is
lost, the reconciler finds the conversation by its routing request (invariants 1-3).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.email import EmailDetails, conversation_from_subject
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.errors import Conflict, NotFound
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import sla
from contactcenter.store import contacts, conversations, locks, messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool
    # a bounce: the id of our message it reports as undelivered
    bounced_message_id: int | None = None
    # what the message did to the SLA clocks, left to do after the commit (a timer to arm)
    sla_moved: sla.Moved | None = None


# more work for the ingest transaction, told what was stored (or found: result.duplicate)
InTransaction = Callable[[Connection, "IngestResult"], Awaitable[None]]


async def ingest(
    conns: Conns, inbound: InboundMessage, *, also: InTransaction | None = None
) -> IngestResult:
    """Store the message (once) and make routing due; `also` runs in the same transaction
    (the IMAP checkpoint advances with the mail it covers)."""
    async with conns.db.acquire() as conn, conn.transaction():
        result, conversation = await _ingest_in_transaction(conn, conns, inbound)
        if also is not None:
            await also(conn, result)
    await sla.arm(conns, result.conversation_id, result.sla_moved)
    if conversation["route_requested_at"] is not None:
        # on a retry too: the first attempt may have died between its commit and its enqueue
        await jobs.enqueue_route(conns, result.conversation_id, conversation["route_version"])
    if result.duplicate:
        return result
    await events.publish_agent_event(
        conns,
        "message.created",
        conversation_id=result.conversation_id,
        team_id=conversation["team_id"],
        assignee_id=conversation["assignee_id"],
        data={"message_id": result.message_id, "direction": "inbound"},
    )
    if result.bounced_message_id is not None:
        await events.publish_agent_event(
            conns,
            "message.status_changed",
            conversation_id=result.conversation_id,
            team_id=conversation["team_id"],
            assignee_id=conversation["assignee_id"],
            data={
                "message_id": result.bounced_message_id,
                "status": "failed",
                "error_code": "bounced",
            },
        )
    logger.info(
        "message ingested",
        extra={
            "channel": inbound.channel,
            "message_id": result.message_id,
            "conversation_id": result.conversation_id,
        },
    )
    return result


async def _ingest_in_transaction(
    conn: Connection, conns: Conns, inbound: InboundMessage
) -> tuple[IngestResult, asyncpg.Record]:
    await locks.external_id(conn, inbound.channel, inbound.external_id)
    existing = await messages.find_by_external_id(conn, inbound.channel, inbound.external_id)
    if existing is not None and _another_mail_same_id(existing, inbound):
        # a broken mailer that gives every mail the same Message-ID: keep each one apart
        inbound = _with_derived_id(inbound)
        await locks.external_id(conn, inbound.channel, inbound.external_id)
        existing = await messages.find_by_external_id(conn, inbound.channel, inbound.external_id)
    if existing is not None:
        return await _duplicate(conn, existing, inbound)

    now = conns.clock()
    email = inbound.email
    bounced = await _record_bounce(conn, email)
    conversation_id = (
        inbound.conversation_id
        or (bounced["conversation_id"] if bounced else None)
        or await _thread(conn, conns, inbound)
    )
    opens_work = not (inbound.automatic or (email and email.automatic))
    sla_moved = None
    contact_id = None
    if conversation_id is None:
        contact_id = await _resolve_contact(conn, inbound)
        if inbound.channel is Channel.SMS:
            # texts have no threads: the customer's open SMS conversation goes on
            conversation_id = await conversations.open_for_contact(
                conn, contact_id, Channel.SMS, inbound.sms_number_id
            )
    if conversation_id is None:
        assert contact_id is not None
        conversation = await conversations.open_new(
            conn,
            contact_id,
            inbound.channel,
            inbound.subject,
            now,
            mailbox_id=email.mailbox_id if email else None,
            sms_number_id=inbound.sms_number_id,
            opens_work=opens_work,
        )
    else:
        # an automatic message (an auto-reply, a bounce, a STOP) is kept with its conversation
        # without reopening it or asking for anyone's attention
        continued = (
            await conversations.touch_inbound(conn, conversation_id, now)
            if opens_work
            else await conversations.get_for_update(conn, conversation_id)
        )
        if continued is None:
            raise NotFound("conversation not found", code="conversation_not_found")
        conversation = continued
        contact_id = conversation["contact_id"]
        if opens_work:
            sla_moved = await sla.on_customer_message(conn, conversation_id, now)

    message = await messages.insert_inbound(
        conn,
        conversation["id"],
        inbound.channel,
        inbound.external_id,
        inbound.text,
        now,
        email,
        automatic=not opens_work,
        attachments=inbound.attachments or (email.attachments if email else ()),
    )
    result = IngestResult(
        message["id"],
        conversation["id"],
        contact_id,
        duplicate=False,
        bounced_message_id=bounced["id"] if bounced else None,
        sla_moved=sla_moved,
    )
    return result, conversation


async def _from_the_contact(
    conn: Connection, conversation_id: int, inbound: InboundMessage
) -> bool:
    conversation = await conversations.get(conn, conversation_id)
    sender = inbound.email.from_address if inbound.email else None
    if conversation is None or sender is None:
        return False
    return await contacts.has_identity(conn, conversation["contact_id"], IdentityKind.EMAIL, sender)


async def _record_bounce(conn: Connection, email: EmailDetails | None) -> asyncpg.Record | None:
    """A bounce marks our undelivered mail failed, with the server's words for the agent."""
    if email is None or email.bounced_message_id is None:
        return None
    reason = email.bounce_reason or "the mail could not be delivered"
    return await messages.mark_bounced(conn, email.bounced_message_id, reason)


async def _thread(conn: Connection, conns: Conns, inbound: InboundMessage) -> int | None:
    """The conversation a mail answers: by the Message-IDs it answers, then by our token in
    the subject; never by the subject alone."""
    if inbound.email is None:
        return None
    found = await messages.conversation_by_email_ids(conn, inbound.email.answers)
    if found is not None:
        conversation_id = int(found["conversation_id"])
        # our own Message-IDs went to the customer alone; the customer's own ones are known to
        # everyone on their mail, so they join only a mail from the customer
        if found["ours"] or await _from_the_contact(conn, conversation_id, inbound):
            return conversation_id
        return None
    secret = conns.settings.secret_key
    if secret and inbound.subject:
        token_id = conversation_from_subject(secret, inbound.subject)
        if token_id is not None and await conversations.get(conn, token_id) is not None:
            return token_id
    return None


def _another_mail_same_id(existing: asyncpg.Record, inbound: InboundMessage) -> bool:
    return (
        inbound.email is not None
        and existing["direction"] == "inbound"
        and existing["body_text"] != inbound.text
    )


def _with_derived_id(inbound: InboundMessage) -> InboundMessage:
    digest = hashlib.sha256(inbound.text.encode()).hexdigest()[:16]
    derived = f"{inbound.external_id}#{digest}"
    assert inbound.email is not None
    return dataclasses.replace(
        inbound,
        external_id=derived,
        email=dataclasses.replace(inbound.email, message_id=derived),
    )


async def _duplicate(
    conn: Connection, existing: asyncpg.Record, inbound: InboundMessage
) -> tuple[IngestResult, asyncpg.Record]:
    """A retry of a message we already hold: the same answer, unless it says something else."""
    if inbound.retry_must_match and (
        existing["body_text"] != inbound.text
        or (
            inbound.conversation_id is not None
            and existing["conversation_id"] != inbound.conversation_id
        )
    ):
        raise Conflict(
            "this client message id was already used for a different message",
            code="client_message_id_reused",
        )
    conversation = await conversations.get(conn, existing["conversation_id"])
    assert conversation is not None
    result = IngestResult(
        existing["id"], conversation["id"], conversation["contact_id"], duplicate=True
    )
    return result, conversation


async def _resolve_contact(conn: Connection, inbound: InboundMessage) -> int:
    """The contact the first known identity belongs to, or a new one; identities are attached."""
    await locks.identities(conn, {f"{i.kind}:{i.value}" for i in inbound.identities})
    contact_id = await contacts.find_by_identities(conn, inbound.identities)
    if contact_id is None:
        profile = {"claimed": inbound.claimed} if inbound.claimed else {}
        contact_id = await contacts.create(conn, inbound.contact_name, profile)
    elif inbound.contact_name:
        await contacts.fill_name(conn, contact_id, inbound.contact_name)
    await contacts.add_identities(conn, contact_id, _unique(inbound.identities))
    return contact_id


def _unique(identities: tuple[Identity, ...]) -> tuple[Identity, ...]:
    return tuple(dict.fromkeys(identities))
