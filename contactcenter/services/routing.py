"""Routing and assignment: the units of work behind the route, assign and reconcile jobs.

Lock order, everywhere a transaction assigns: the team's queue lock (advisory), then the team's
online agents (row locks, id order), then the conversations at the head of the queue. Loads
are counted under the agent's row lock, so two workers can never both fill an agent's last
slot (invariant 4). Every function re-reads PostgreSQL and is safe to run twice (invariant 5).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.domain.assignment import Assignment, plan_assignments
from contactcenter.domain.routing import decide_route
from contactcenter.domain.rules import RulesOutcome
from contactcenter.store import agents, conversations, locks, messages, teams

logger = logging.getLogger(__name__)

# how many conversations one assignment transaction takes at most
ASSIGN_BATCH = 100
# how much the reconciler takes on in one pass
RECONCILE_BATCH = 1000


async def route_conversation(conns: Conns, conversation_id: int) -> int | None:
    """Decide the conversation's team and put it in that team's queue; then fill the team.

    Returns the team it was queued in, or None when there was nothing to route.
    """
    async with conns.db.acquire() as conn, conn.transaction():
        conversation = await conversations.get_for_update(conn, conversation_id)
        if conversation is None or conversation["route_requested_at"] is None:
            return None  # routed already: a re-run, or a reconciler enqueue that came late
        decision = decide_route(
            RulesOutcome(),
            tier=4,
            current_team_id=conversation["team_id"],
            current_priority=conversation["priority"],
            default_team_id=await teams.default_team_id(conn),
        )
        if decision.team_id is None:
            # nowhere to go: the request stays, and the reconciler tries again until a team
            # can take it (a conversation never waits in a queue nobody serves)
            logger.warning("no team to route to", extra={"conversation_id": conversation_id})
            return None
        await conversations.enqueue_in_team(
            conn, conversation_id, decision.team_id, decision.priority, conns.clock()
        )
    logger.info(
        "conversation queued",
        extra={"conversation_id": conversation_id, "team_id": decision.team_id},
    )
    # the team hears of its new work even before anyone is assigned
    await events.publish_agent_event(
        conns,
        "conversation.queued",
        conversation_id=conversation_id,
        team_id=decision.team_id,
        assignee_id=conversation["assignee_id"],
        data={"priority": decision.priority},
    )
    await assign_waiting(conns, decision.team_id)
    return decision.team_id


async def assign_waiting(conns: Conns, team_id: int) -> list[Assignment]:
    """Give the team's waiting conversations to its online agents with free slots."""
    done: list[Assignment] = []
    while True:
        batch = await _assign_batch(conns, team_id)
        done.extend(batch)
        for assignment in batch:
            await events.publish_agent_event(
                conns,
                "conversation.assigned",
                conversation_id=assignment.conversation_id,
                team_id=team_id,
                assignee_id=assignment.agent_id,
            )
        if len(batch) < ASSIGN_BATCH:
            return done


async def _assign_batch(conns: Conns, team_id: int) -> list[Assignment]:
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.team_queue(conn, team_id)
        online = await agents.lock_online_with_loads(conn, team_id)
        free = sum(agent.free_slots for agent in online)
        if free == 0:
            return []
        waiting = await conversations.lock_queue_head(conn, team_id, min(free, ASSIGN_BATCH))
        plan = plan_assignments(waiting, online)
        now = conns.clock()
        by_agent: dict[int, list[int]] = defaultdict(list)
        for assignment in plan:
            by_agent[assignment.agent_id].append(assignment.conversation_id)
        for agent_id, conversation_ids in by_agent.items():
            await conversations.assign(conn, conversation_ids, agent_id, now)
            await agents.touch_assigned(conn, agent_id, now)
    if plan:
        logger.info("assigned", extra={"team_id": team_id, "count": len(plan)})
    return plan


@dataclass
class ReconcileReport:
    routes_enqueued: int = 0
    teams_filled: list[int] = field(default_factory=list)
    woken: int = 0
    sends_enqueued: int = 0


async def reconcile(conns: Conns) -> ReconcileReport:
    """The backstop for lost jobs: whatever PostgreSQL says is due and still undone."""
    report = ReconcileReport()
    now = conns.clock()
    stale = now - timedelta(seconds=conns.settings.reconcile_after_seconds)

    woken = await conversations.wake_snoozed(conns.db, now)
    report.woken = len(woken)
    for row in woken:
        await events.publish_agent_event(
            conns,
            "conversation.status_changed",
            conversation_id=row["id"],
            team_id=row["team_id"],
            assignee_id=row["assignee_id"],
            data={"status": row["status"]},
        )

    for row in await conversations.route_due(conns.db, stale, RECONCILE_BATCH):
        # the same id as ingest used: while that job still waits in the queue this is a no-op
        if await jobs.enqueue_route(conns, row["id"], row["route_version"]):
            report.routes_enqueued += 1
    for row in woken:
        if row["route_requested_at"] is not None:
            await jobs.enqueue_route(conns, row["id"], row["route_version"])

    report.teams_filled = await conversations.teams_with_idle_capacity(conns.db)
    await jobs.enqueue_assign_waiting(conns, report.teams_filled)

    for message_id in await messages.queued_before(conns.db, stale, RECONCILE_BATCH):
        if await jobs.enqueue_send(conns, message_id):
            report.sends_enqueued += 1
    if report.routes_enqueued or report.teams_filled or report.woken:
        logger.info(
            "reconciled",
            extra={
                "routes_enqueued": report.routes_enqueued,
                "teams_filled": report.teams_filled,
                "woken": report.woken,
                "sends_enqueued": report.sends_enqueued,
            },
        )
    return report
