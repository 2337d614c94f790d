"""The reconciler: the backstop for lost jobs, and the clock of waiting conversations.

Whatever PostgreSQL says is due and still undone is done again (invariant 3): routing whose
job was lost, replies still queued, snoozed conversations whose time has come, teams where
someone waits while an agent has room, and conversations that waited past their team's
overflow time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.domain.enums import ConversationStatus
from contactcenter.services import sla
from contactcenter.store import conversations, messages
from contactcenter.store import sla as sla_store

logger = logging.getLogger(__name__)

# how much the reconciler takes on in one pass
RECONCILE_BATCH = 1000


@dataclass
class ReconcileReport:
    routes_enqueued: int = 0
    routes_released: int = 0
    teams_filled: list[int] = field(default_factory=list)
    woken: int = 0
    sends_enqueued: int = 0
    overflowed: int = 0
    sla_rearmed: int = 0
    sla_fired: int = 0


async def reconcile(conns: Conns) -> ReconcileReport:
    report = ReconcileReport()
    now = conns.clock()
    stale = now - timedelta(seconds=conns.settings.reconcile_after_seconds)

    woken, moved = await _wake_snoozed(conns, now)
    report.woken = len(woken)
    for conversation_id, sla_moved in moved:
        await sla.arm(conns, conversation_id, sla_moved)
    for row in woken:
        await events.publish_agent_event(
            conns,
            "conversation.status_changed",
            conversation_id=row["id"],
            team_id=row["team_id"],
            assignee_id=row["assignee_id"],
            data={"status": row["status"]},
        )

    report.routes_enqueued, report.routes_released = await _route_again(conns, stale)
    for row in woken:
        if row["route_requested_at"] is not None:
            await jobs.enqueue_route(conns, row["id"], row["route_version"])

    overflowed = await conversations.overflow_due(conns.db, now, RECONCILE_BATCH)
    report.overflowed = len(overflowed)
    for row in overflowed:
        await events.publish_agent_event(
            conns,
            "conversation.overflowed",
            conversation_id=row["id"],
            team_id=row["team_id"],
            assignee_id=None,
            data={"from_team_id": row["from_team"]},
        )

    report.teams_filled = await conversations.teams_with_idle_capacity(conns.db, now)
    await jobs.enqueue_assign_waiting(conns, report.teams_filled)

    for message_id in await messages.queued_before(conns.db, stale, RECONCILE_BATCH):
        if await jobs.enqueue_send(conns, message_id):
            report.sends_enqueued += 1

    swept = await sla.sweep(conns)
    report.sla_rearmed, report.sla_fired = swept.rearmed, swept.fired
    for event_id in await sla_store.notices_before(conns.db, stale, RECONCILE_BATCH):
        await jobs.enqueue_sla_notice(conns, event_id)
    if (
        report.routes_enqueued
        or report.routes_released
        or report.woken
        or report.overflowed
        or report.sends_enqueued
        or report.sla_fired
    ):
        logger.info(
            "reconciled",
            extra={
                "routes_enqueued": report.routes_enqueued,
                "routes_released": report.routes_released,
                "teams_filled": report.teams_filled,
                "woken": report.woken,
                "overflowed": report.overflowed,
                "sends_enqueued": report.sends_enqueued,
                "sla_fired": report.sla_fired,
            },
        )
    return report


async def _route_again(conns: Conns, stale: datetime) -> tuple[int, int]:
    """Routing due since before `stale`: its job enqueued again, or let go to run again when a
    worker took it and died. (how many of each)"""
    enqueued = released = 0
    for row in await conversations.route_due(conns.db, stale, RECONCILE_BATCH):
        # the same id as ingest used: while that job still waits in the queue this is a no-op
        if await jobs.enqueue_route(conns, row["id"], row["route_version"]):
            enqueued += 1
        elif await jobs.release_orphaned_route(conns, row["id"], row["route_version"]):
            released += 1
    return enqueued, released


async def _wake_snoozed(
    conns: Conns, now: datetime
) -> tuple[list[asyncpg.Record], list[tuple[int, sla.Moved | None]]]:
    """Snoozed conversations whose time has come are open again, their resolution clocks
    running again in the same transaction; what that leaves to do after the commit."""
    async with conns.db.acquire() as conn, conn.transaction():
        woken = await conversations.wake_snoozed(conn, now, RECONCILE_BATCH)
        # resolution counts on from when the snooze ended, however late this pass came
        moved = [
            (
                row["id"],
                await sla.on_status(conn, row["id"], ConversationStatus.OPEN, row["woke_at"]),
            )
            for row in woken
        ]
    return woken, moved
