"""What agents do from the unified inbox: list, open, reply, note, change status."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.contacts import MAX_TAGS, normalise_tags
from contactcenter.domain.conversations import check_status_change
from contactcenter.domain.enums import Channel, ConversationStatus
from contactcenter.domain.errors import Invalid, NotFound
from contactcenter.services import assignment, care, email_replies, sla, sms_outbound
from contactcenter.store import contacts, conversations, messages
from contactcenter.store import sla as sla_store
from contactcenter.store.inbox import InboxCursor, InboxQuery, list_conversations

logger = logging.getLogger(__name__)

MESSAGES_IN_VIEW = 200


def _not_found() -> NotFound:
    # the same answer whether the id does not exist or belongs to someone the agent may not
    # see, so an id never tells what it hides
    return NotFound("conversation not found", code="conversation_not_found")


async def list_inbox(
    conns: Conns,
    agent: Agent,
    *,
    view: str,
    statuses: tuple[str, ...],
    channel: str | None,
    limit: int,
    after: InboxCursor | None,
    tiers: tuple[int, ...] = (),
    sla_states: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], InboxCursor | None]:
    query = InboxQuery(
        viewer_id=agent.id,
        viewer_team_ids=agent.team_ids,
        viewer_sees_everything=agent.sees_everything,
        view=view,
        statuses=statuses,
        channel=channel,
        limit=limit,
        after=after,
        tiers=tiers,
        sla_states=sla_states,
        tags=tags,
    )
    return await list_conversations(conns.db, query)


async def _visible(
    conn: Any, agent: Agent, conversation_id: int, *, for_update: bool = False
) -> asyncpg.Record:
    read = conversations.get_for_update if for_update else conversations.get
    conversation = await read(conn, conversation_id)
    if conversation is None or not agent.can_see(
        conversation["team_id"], conversation["assignee_id"]
    ):
        raise _not_found()
    return conversation


async def conversation_detail(conns: Conns, agent: Agent, conversation_id: int) -> dict[str, Any]:
    async with conns.db.acquire() as conn:
        conversation = dict(await _visible(conn, agent, conversation_id))
        conversation["messages"] = await messages.agent_view(
            conn, conversation_id, MESSAGES_IN_VIEW
        )
        card = await contacts.get_card(conn, conversation["contact_id"])
        assert card is not None
        card["past_conversations"] = await conversations.past_for_contact(
            conn, conversation["contact_id"], conversation_id, agent
        )
        conversation["sla"] = await sla_store.view(conn, conversation_id)
    conversation["contact"] = card
    return conversation


async def reply(
    conns: Conns, agent: Agent, conversation_id: int, text: str, channel: Channel | None
) -> asyncpg.Record:
    """Store the reply as queued and hand it to the send job; the customer gets it from there.

    `channel` answers on another of the customer's channels than the one they wrote on (an
    e-mail to a customer who texted, say): the reply stays in this conversation, and an
    answer to it comes back here. A web chat is reached only in its own conversation."""
    async with conns.db.acquire() as conn, conn.transaction():
        conversation = await _visible(conn, agent, conversation_id, for_update=True)
        target = await _reply_channel(conn, conns, conversation, channel, text)
        message = await messages.insert_outbound(
            conn,
            conversation_id,
            target,
            agent.id,
            text,
            conns.clock(),
            external_id=await email_replies.outbound_message_id(conn, conversation, target),
        )
    await jobs.enqueue_send(conns, message["id"])
    await _announce_message(conns, conversation, message["id"], "outbound")
    return message


async def _reply_channel(
    conn: Any, conns: Conns, conversation: asyncpg.Record, asked: Channel | None, text: str
) -> Channel:
    """The channel a reply goes out on, refused at once (Invalid) when it cannot reach the
    customer there."""
    target = Channel(asked or conversation["channel"])
    if target == Channel.WEB and conversation["channel"] != Channel.WEB:
        raise Invalid(
            "a web chat reply reaches the visitor of a web conversation only",
            code="channel_not_available",
            details={"channel": target},
        )
    if target == Channel.SMS:
        await sms_outbound.check_reply(conn, conversation, text, conns.settings.sms_max_segments)
    if target == Channel.EMAIL and not await contacts.email_addresses(
        conn, conversation["contact_id"]
    ):
        raise Invalid("the customer has no e-mail address", code="no_recipient")
    return target


async def add_note(conns: Conns, agent: Agent, conversation_id: int, text: str) -> asyncpg.Record:
    """An internal note: stored with the conversation, never sent to the customer."""
    async with conns.db.acquire() as conn, conn.transaction():
        conversation = await _visible(conn, agent, conversation_id, for_update=True)
        note = await messages.insert_outbound(
            conn,
            conversation_id,
            conversation["channel"],
            agent.id,
            text,
            conns.clock(),
            is_note=True,
        )
    await _announce_message(conns, conversation, note["id"], "note")
    return note


async def _announce_message(
    conns: Conns, conversation: asyncpg.Record, message_id: int, direction: str
) -> None:
    await events.publish_agent_event(
        conns,
        "message.created",
        conversation_id=conversation["id"],
        team_id=conversation["team_id"],
        assignee_id=conversation["assignee_id"],
        data={"message_id": message_id, "direction": direction},
    )


async def change_tags(
    conns: Conns,
    agent: Agent,
    conversation_id: int,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> list[str]:
    """Add and remove a conversation's tags (normalised as contacts' are); the tags it has
    after. Nothing changes, and nobody is told, when nothing would."""
    adding, removing = normalise_tags(add), normalise_tags(remove)
    if both := [tag for tag in adding if tag in removing]:
        raise Invalid(
            "a tag cannot be added and removed at once",
            code="conflicting_tags",
            details={"tags": both},
        )
    async with conns.db.acquire() as conn, conn.transaction():
        conversation = await _visible(conn, agent, conversation_id, for_update=True)
        before = list(conversation["tags"])
        after = [t for t in before if t not in removing] + [t for t in adding if t not in before]
        if after == before:
            return before
        if len(after) > MAX_TAGS:
            raise Invalid(
                f"a conversation has at most {MAX_TAGS} tags",
                code="too_many_tags",
                details={"max": MAX_TAGS},
            )
        tags = await conversations.set_tags(conn, conversation_id, after, conns.clock())
    await events.publish_agent_event(
        conns,
        "conversation.tags_changed",
        conversation_id=conversation_id,
        team_id=conversation["team_id"],
        assignee_id=conversation["assignee_id"],
        data={
            "tags": tags,
            "added": [t for t in tags if t not in before],
            "removed": [t for t in before if t not in tags],
        },
    )
    return tags


async def change_status(
    conns: Conns,
    agent: Agent,
    conversation_id: int,
    status: ConversationStatus,
    until: datetime | None,
) -> asyncpg.Record:
    now = conns.clock()
    async with conns.db.acquire() as conn, conn.transaction():
        before = await _visible(conn, agent, conversation_id, for_update=True)
        check_status_change(ConversationStatus(before["status"]), status, until, now)
        after = await conversations.set_status(conn, conversation_id, status, until, now)
        sla_moved = await sla.on_status(conn, conversation_id, status, now)
        if status is ConversationStatus.RESOLVED:
            await care.schedule_follow_up(conn, after, now)
    await sla.arm(conns, conversation_id, sla_moved)

    if after["route_requested_at"] is not None:
        await jobs.enqueue_route(conns, conversation_id, after["route_version"])
    if before["assignee_id"] is not None and status is ConversationStatus.RESOLVED:
        # a freed slot takes the next waiting conversation at once
        await assignment.fill_for_agent(conns, before["assignee_id"])
    await events.publish_agent_event(
        conns,
        "conversation.status_changed",
        conversation_id=conversation_id,
        team_id=after["team_id"],
        assignee_id=after["assignee_id"],
        data={"status": status, "previous": before["status"]},
    )
    return after
