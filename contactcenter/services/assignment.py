"""Assignment: giving a team's waiting conversations to agents, and transfers.

Lock order, everywhere a transaction assigns: the team's queue lock (advisory), then the
agents (row locks, id order), then the conversations. Loads are counted under the agents' row
locks, so two workers can never both fill an agent's last slot (invariant 4). Every function
re-reads PostgreSQL and is safe to run twice (invariant 5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.assignment import Assignment, plan_assignments
from contactcenter.domain.enums import AssignStrategy, ConversationStatus, Role
from contactcenter.domain.errors import Conflict, Forbidden, Invalid, NotFound
from contactcenter.domain.routing import merge_skills
from contactcenter.store import agents, conversations, locks, teams

logger = logging.getLogger(__name__)

# how many conversations one assignment transaction takes at most
ASSIGN_BATCH = 100


async def assign_waiting(conns: Conns, team_id: int) -> list[Assignment]:
    """Give the team's waiting conversations to the agents who may take them."""
    done: list[Assignment] = []
    while True:
        batch, head_was_full = await _assign_batch(conns, team_id)
        done.extend(batch)
        for assignment in batch:
            await events.publish_agent_event(
                conns,
                "conversation.assigned",
                conversation_id=assignment.conversation_id,
                team_id=team_id,
                assignee_id=assignment.agent_id,
                data={"reason": assignment.reason},
            )
        # more may wait behind a full head that was all given out
        if not (batch and head_was_full):
            return done


async def _assign_batch(conns: Conns, team_id: int) -> tuple[list[Assignment], bool]:
    """The assignments made, and whether the head of the queue taken was a full batch."""
    now = conns.clock()
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.team_queue(conn, team_id)
        team = await teams.routing_settings(conn, team_id)
        if team is None:
            return [], False
        preferred = await conversations.preferred_waiting(conn, team_id)
        candidates = await agents.lock_candidates(conn, team_id, preferred)
        available = [agent for agent in candidates if agent.free_slots > 0]
        if not available:
            return [], False
        waiting = await conversations.lock_queue_head(conn, team_id, ASSIGN_BATCH, available, now)
        plan = plan_assignments(
            waiting, available, now=now, strategy=AssignStrategy(team["strategy"])
        )
        if plan:
            await conversations.assign(conn, plan, now)
            # the order of each agent's last turn in the plan is the order of their turns
            last_turn = {a.agent_id: turn for turn, a in enumerate(plan)}
            await agents.touch_served(conn, sorted(last_turn, key=last_turn.__getitem__), now)
    if plan:
        logger.info("assigned", extra={"team_id": team_id, "count": len(plan)})
    return plan, len(waiting) == ASSIGN_BATCH


async def fill_for_agent(conns: Conns, agent_id: int) -> None:
    """An agent has room again (online, a slot freed): the queues they serve move at once."""
    await jobs.enqueue_assign_waiting(
        conns, await conversations.teams_for_agent(conns.db, agent_id)
    )


@dataclass(frozen=True)
class Transfer:
    agent_id: int | None
    team_id: int | None


async def transfer(conns: Conns, by: Agent, conversation_id: int, to: Transfer) -> dict[str, Any]:
    """Give the conversation to an agent (within their capacity) or to a team's queue.

    Agents may take an unassigned conversation or pass on their own (to a team); giving
    one to another agent, or moving a colleague's, is for supervisors and admins.
    """
    if to.agent_id is None and to.team_id is None:
        raise Invalid("name an agent_id, a team_id or both", code="nothing_to_assign")
    if to.agent_id not in (None, by.id) and by.role is Role.AGENT:
        raise Forbidden(
            "agents may take a conversation or pass it to a team; a supervisor assigns it"
            " to someone else",
            code="forbidden",
        )
    now = conns.clock()
    visible = _transferable(by, await conversations.get(conns.db, conversation_id))
    async with conns.db.acquire() as conn, conn.transaction():
        if to.team_id is not None and await teams.routing_settings(conn, to.team_id) is None:
            raise Invalid("no such team", code="unknown_team")
        if to.agent_id is not None:
            # the agent's row first, as every assignment takes its locks
            await _lock_agent_with_room(conn, to.agent_id, conversation_id, visible["channel"])
        # again, now that nobody can change it under us
        before = _transferable(by, await conversations.get_for_update(conn, conversation_id))
        team_id = to.team_id or before["team_id"] or await teams.default_team_id(conn)
        team = None
        if team_id is not None:
            team = await teams.routing_settings(conn, team_id, hold=True)
        if team is None:
            raise Conflict("there is no team to put it in", code="no_team")
        team_id = team["id"]
        skills = merge_skills(
            tuple(team["skills"]), tuple((before["routing"] or {}).get("rule_skills", ()))
        )
        after = await conversations.transfer(
            conn,
            conversation_id,
            team_id=team["id"],
            agent_id=to.agent_id,
            required_skills=list(skills),
            by=by.id,
            now=now,
        )
        if to.agent_id is not None:
            await agents.touch_served(conn, [to.agent_id], now)
    logger.info(
        "conversation transferred",
        extra={"conversation_id": conversation_id, "team_id": team_id, "agent_id": to.agent_id},
    )
    if before["assignee_id"] is not None and before["assignee_id"] != to.agent_id:
        await fill_for_agent(conns, before["assignee_id"])
    if to.agent_id is None:
        await jobs.enqueue_assign_waiting(conns, [team_id])
    await events.publish_agent_event(
        conns,
        "conversation.assigned",
        conversation_id=conversation_id,
        team_id=team_id,
        assignee_id=to.agent_id,
        data={"reason": "transfer", "previous_assignee_id": before["assignee_id"]},
    )
    return dict(after)


def _transferable(by: Agent, conversation: asyncpg.Record | None) -> asyncpg.Record:
    if conversation is None or not by.can_see(conversation["team_id"], conversation["assignee_id"]):
        raise NotFound("conversation not found", code="conversation_not_found")
    if conversation["status"] not in (ConversationStatus.OPEN, ConversationStatus.PENDING):
        raise Conflict(
            f"a {conversation['status']} conversation cannot be assigned; reopen it first",
            code="conversation_not_active",
        )
    if by.role is Role.AGENT and conversation["assignee_id"] not in (None, by.id):
        raise Forbidden(
            "this conversation is a colleague's: they or a supervisor can pass it on",
            code="forbidden",
        )
    return conversation


async def _lock_agent_with_room(
    conn: Connection, agent_id: int, conversation_id: int, channel: str
) -> None:
    candidates = await agents.lock_candidates(conn, -1, [agent_id], online_only=False)
    if not candidates:
        raise Invalid("no such agent", code="unknown_agent")
    agent = candidates[0]
    holds = await conversations.held_by(conn, conversation_id, agent_id)
    if holds:
        return  # already theirs: no new slot needed
    limit = agent.channel_capacity.get(channel)
    if agent.free_slots == 0 or (limit is not None and agent.channel_load.get(channel, 0) >= limit):
        raise Conflict(
            "the agent has no free slot for this conversation",
            code="agent_at_capacity",
            details={"load": agent.load, "capacity": agent.capacity},
        )
