"""The SLA engine: each conversation's clocks, the timers that fire on their due instants, and
what a warning or a breach does.

- Clocks (domain/sla.py) live in conversation_sla. They start when the route job first gives a
  conversation a policy (from the customer's first message), and move with the conversation's
  life inside the transaction that changes it: a customer message (ingest), a reply actually
  sent (delivery), a change of status (the inbox, the snooze waking).
- Each save keeps the earliest timer not yet acted on (next_timer_at). After the commit the
  caller arms it: an arq job deferred to that instant, its id the conversation and the instant,
  so arming twice is one job and a moved due time is a new one.
- A timer's job re-reads the clocks under the conversation's lock and acts on every timer due
  by now and not acted on: an sla_events row (unique per clock, stage and instant, so many jobs
  and sweeps act once), a real-time event, and on a breach the policy's escalation. A stale job
  (its clock met, paused or moved) finds nothing due and does nothing.
- The sweeper (the reconciler's 2 s clock) re-arms every pending timer once Redis has lost its
  jobs (a marker key, gone with FLUSHALL, says so), and acts itself on any timer overdue by
  more than SWEEP_LATE: no breach is ever missed, at worst it is seconds late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from contactcenter import events, jobs
from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS, Conns
from contactcenter.db import Connection
from contactcenter.domain import sla
from contactcenter.domain.business_hours import Calendar
from contactcenter.domain.enums import ConversationStatus, SlaClock
from contactcenter.domain.sla import SlaClocks, SlaEvent, SlaStage, Timer
from contactcenter.domain.sla_policies import SlaPolicy
from contactcenter.services import assignment
from contactcenter.store import business_hours, conversations, sla_policies
from contactcenter.store import sla as store

logger = logging.getLogger(__name__)

# a timer this late was not acted on by its job (lost, or the workers are swamped): the sweeper
# acts on it itself
SWEEP_LATE = timedelta(seconds=2)
# how many timers the sweeper takes on in one pass
SWEEP_BATCH = 500
# how many pending timers are armed again per pass after Redis lost its jobs
REARM_BATCH = 5000
# the marker of "every pending timer has its job in Redis"; while it holds a cursor, the
# timers after it are still to be armed again. A Redis key: FLUSHALL takes it with the jobs.
REARM_KEY = "cc:sla:rearm"
REARM_DONE = "done"


# --- policies and calendars ------------------------------------------------------------------


async def _policy_and_calendar(
    conn: Connection, policy_id: int | None
) -> tuple[SlaPolicy, Calendar | None] | None:
    if policy_id is None:
        return None
    policy = await sla_policies.load(conn, policy_id)
    if policy is None:
        return None
    calendar = None
    if policy.clock == SlaClock.BUSINESS:
        # with no calendar at all (none is the default), every second counts
        calendar = await business_hours.load(conn, policy.business_hours_id)
    return policy, calendar


async def _save(
    conn: Connection,
    conversation_id: int,
    stored: store.StoredClocks,
    policy: SlaPolicy,
    calendar: Calendar | None,
    now: datetime,
) -> datetime | None:
    """Save the clocks with what follows from them; the next timer to arm (None: none)."""
    clocks = stored.clocks
    fired = sla.still_current(clocks, stored.fired)
    pending = sla.pending_timers(clocks, fired)
    saved = replace(
        stored,
        fired=fired,
        state=sla.live_state(clocks, now),
        next_timer_at=min((t.due_at for t in pending), default=None),
    )
    await store.save(
        conn,
        conversation_id,
        saved,
        sla.measured(clocks, policy, calendar),
        sla.earliest_due(clocks),
    )
    return saved.next_timer_at


# --- what a change leaves to do after its commit ---------------------------------------------


@dataclass(frozen=True)
class Fired:
    event_id: int
    timer: Timer
    escalation: dict[str, Any]
    notify: bool


@dataclass
class Moved:
    """What a change of the clocks leaves to do once its transaction has committed: the timer
    to arm, and what fired (to announce, to e-mail, and the queues an escalation changed)."""

    next_timer_at: datetime | None = None
    fired: list[Fired] = field(default_factory=list)
    # the conversation's team after the escalations, and its assignee when the timers fired
    # (an agent an escalation took it from hears of the breach too)
    team_id: int | None = None
    assignee_id: int | None = None
    moved_team: bool = False
    released_agent_id: int | None = None


async def arm(conns: Conns, conversation_id: int, moved: Moved | None) -> None:
    """After the commit: the timer job for the next instant; the real-time events, notices and
    queue fills of what fired."""
    if moved is None:
        return
    if moved.next_timer_at is not None:
        await jobs.enqueue_sla_timer(conns, conversation_id, moved.next_timer_at)
    for fired in moved.fired:
        await events.publish_agent_event(
            conns,
            "sla.breached" if fired.timer.stage == SlaStage.BREACH else "sla.warning",
            conversation_id=conversation_id,
            team_id=moved.team_id,
            assignee_id=moved.assignee_id,
            data={
                "event_id": fired.event_id,
                "kind": fired.timer.kind,
                "due_at": fired.timer.due_at.isoformat(),
                "escalation": fired.escalation,
            },
        )
        if fired.notify:
            await jobs.enqueue_sla_notice(conns, fired.event_id)
    if moved.moved_team and moved.team_id is not None:
        await assignment.assign_waiting(conns, moved.team_id)
    if moved.released_agent_id is not None:
        await assignment.fill_for_agent(conns, moved.released_agent_id)


# --- the clocks move with the conversation ---------------------------------------------------


async def start(
    conn: Connection,
    conversation_id: int,
    policy_id: int | None,
    at: datetime,
    now: datetime,
    *,
    answered_at: datetime | None = None,
) -> Moved | None:
    """In the route job's transaction: a conversation routed under a policy for the first
    time gets its clocks, running from `at` (when the customer asked); a reply already sent
    (`answered_at`: an agent was quicker than the route job) is its first response. Later
    routings keep the clocks and the policy they run by. What is already due by `now` (the
    job ran late) is acted on at once."""
    if policy_id is None or await store.get_for_update(conn, conversation_id) is not None:
        return None
    loaded = await _policy_and_calendar(conn, policy_id)
    if loaded is None:
        return None
    policy, calendar = loaded
    clocks = sla.start(policy, calendar, at)
    if answered_at is not None:
        clocks = sla.apply(clocks, sla.AgentReplySent(answered_at), policy, calendar)
    stored = store.StoredClocks(policy.id, clocks, frozenset(), sla.SlaState.OK, None)
    moved = Moved()
    fired = await _act_on_due(conn, conversation_id, stored, policy, now, moved)
    stored = replace(stored, fired=fired)
    moved.next_timer_at = await _save(conn, conversation_id, stored, policy, calendar, now)
    return moved


async def _record(
    conn: Connection,
    conversation_id: int,
    events_for: Callable[[SlaClocks], list[SlaEvent]],
    now: datetime,
) -> Moved | None:
    """Apply the events of a change to the conversation's clocks. What fell due before it and
    was not acted on yet (its job a moment behind) is acted on first, exactly as the job would
    have: a reply a second late is still a breach, escalated."""
    stored = await store.get_for_update(conn, conversation_id)
    if stored is None:
        return None
    events = events_for(stored.clocks)
    loaded = await _policy_and_calendar(conn, stored.policy_id) if events else None
    if loaded is None:
        return None
    policy, calendar = loaded
    moved = Moved()
    fired = await _act_on_due(conn, conversation_id, stored, policy, now, moved)
    clocks = stored.clocks
    for event in events:
        clocks = sla.apply(clocks, event, policy, calendar)
    unchanged = replace(clocks, last_event_at=stored.clocks.last_event_at) == stored.clocks
    if unchanged and fired == stored.fired:
        return None  # nothing moved (a second message while the clocks wait on the agent)
    changed = replace(stored, clocks=clocks, fired=fired)
    moved.next_timer_at = await _save(conn, conversation_id, changed, policy, calendar, now)
    return moved


async def on_customer_message(
    conn: Connection, conversation_id: int, now: datetime
) -> Moved | None:
    """The customer wrote (ingest, which reopens and wakes the conversation)."""
    return await _record(
        conn, conversation_id, lambda clocks: sla.customer_message_events(clocks, now), now
    )


async def on_reply_sent(conn: Connection, conversation_id: int, now: datetime) -> Moved | None:
    """An agent's reply reached the customer (never a note, an auto-reply or a failed send)."""
    return await _record(conn, conversation_id, lambda _: [sla.AgentReplySent(now)], now)


async def on_status(
    conn: Connection, conversation_id: int, status: ConversationStatus, now: datetime
) -> Moved | None:
    """The conversation's status changed (an agent, or the snooze waking)."""
    return await _record(
        conn, conversation_id, lambda clocks: sla.status_events(clocks, status, now), now
    )


# --- timers fire -----------------------------------------------------------------------------


async def fire(conns: Conns, conversation_id: int) -> list[Fired]:
    """Act on every timer of the conversation due by now and not yet acted on."""
    now = conns.clock()
    async with conns.db.acquire() as conn, conn.transaction():
        moved = await _fire_in_transaction(conn, conversation_id, now)
    await arm(conns, conversation_id, moved)
    return [] if moved is None else moved.fired


async def _fire_in_transaction(
    conn: Connection, conversation_id: int, now: datetime
) -> Moved | None:
    # the conversation first, then its clocks: the order every change takes them in
    locked = await conversations.get_for_update(conn, conversation_id)
    if locked is None:
        return None
    stored = await store.get_for_update(conn, conversation_id)
    if stored is None:
        return None
    loaded = await _policy_and_calendar(conn, stored.policy_id)
    if loaded is None:
        # the policy is gone: its clocks wait for nothing any more
        await store.clear_timer(conn, conversation_id)
        return None
    policy, calendar = loaded
    moved = Moved()
    fired = await _act_on_due(conn, conversation_id, stored, policy, now, moved, locked)
    if fired == stored.fired:
        # a stale timer: the clocks moved on (and were saved with their next timer then)
        pending = sla.pending_timers(stored.clocks, stored.fired)
        moved.next_timer_at = min((t.due_at for t in pending), default=None)
        return moved
    changed = replace(stored, fired=fired)
    moved.next_timer_at = await _save(conn, conversation_id, changed, policy, calendar, now)
    return moved


async def _act_on_due(
    conn: Connection,
    conversation_id: int,
    stored: store.StoredClocks,
    policy: SlaPolicy,
    now: datetime,
    moved: Moved,
    locked: asyncpg.Record | None = None,
) -> frozenset[str]:
    """Every timer due by `now` and not yet acted on: its sla_events row, and a breach's
    escalation; what fired goes into `moved`. The keys of the timers acted on after it. The
    caller holds the conversation's lock (`locked`: the row it read taking it)."""
    due = [t for t in sla.pending_timers(stored.clocks, stored.fired) if t.due_at <= now]
    if not due:
        return stored.fired
    row = locked or await conversations.get_for_update(conn, conversation_id)
    assert row is not None
    conversation = dict(row)
    moved.assignee_id = conversation["assignee_id"]
    for timer in due:
        breach = timer.stage == SlaStage.BREACH
        notify_email = policy.escalation.notify_email if breach else None
        event_id = await store.insert_event(conn, conversation, policy.id, timer, now, notify_email)
        if event_id is None:
            continue  # acted on already
        done: dict[str, Any] = {}
        if breach:
            done, conversation = await _escalate(conn, conversation, policy, timer, now, moved)
            if done:
                await store.set_event_escalation(conn, event_id, done)
        moved.fired.append(Fired(event_id, timer, done, notify_email is not None))
        logger.info(
            "sla timer fired",
            extra={
                "conversation_id": conversation_id,
                "kind": timer.kind,
                "stage": timer.stage,
                "due_at": timer.due_at.isoformat(),
                "lag_ms": round((now - timer.due_at) / timedelta(milliseconds=1)),
            },
        )
    moved.team_id = conversation["team_id"]
    return stored.fired | {sla.timer_key(t) for t in due}


async def _escalate(
    conn: Connection,
    conversation: dict[str, Any],
    policy: SlaPolicy,
    timer: Timer,
    now: datetime,
    moved: Moved,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy's escalation for a breach: the priority raised (never lowered), the
    conversation moved to the escalation team (an assignee outside it lets it go, and it waits
    there in its old place). What was done, and the conversation after it."""
    escalation = policy.escalation
    priority = escalation.raise_priority_to
    if priority is not None and priority <= conversation["priority"]:
        priority = None
    team_id = escalation.team_id
    if team_id == conversation["team_id"]:
        team_id = None
    if priority is None and team_id is None:
        return {}, conversation
    assignee = conversation["assignee_id"]
    unassign = (
        team_id is not None
        and assignee is not None
        and not await store.is_member(conn, team_id, assignee)
    )
    record = {
        "at": now.isoformat(),
        "kind": str(timer.kind),
        "policy_id": policy.id,
        "priority": None if priority is None else [conversation["priority"], priority],
        "team": None if team_id is None else [conversation["team_id"], team_id],
        "unassigned": assignee if unassign else None,
    }
    after = await store.escalate(
        conn,
        conversation["id"],
        raise_priority_to=priority,
        team_id=team_id,
        unassign=unassign,
        now=now,
        record=record,
    )
    if unassign:
        moved.released_agent_id = assignee
    if team_id is not None:
        moved.moved_team = True
    done = {key: value for key, value in record.items() if value is not None}
    return done, {**conversation, **dict(after)}


# --- the sweeper -----------------------------------------------------------------------------


@dataclass
class SweepReport:
    rearmed: int = 0
    fired: int = 0


async def sweep(conns: Conns) -> SweepReport:
    """Re-arm what Redis lost; act on what is overdue (see the module's notes)."""
    report = SweepReport()
    report.rearmed = await _rearm(conns)
    now = conns.clock()
    for row in await store.timers_before(conns.db, now - SWEEP_LATE, SWEEP_BATCH):
        if await fire(conns, row["conversation_id"]):
            report.fired += 1
    return report


async def _rearm(conns: Conns) -> int:
    try:
        cursor = await _redis_call(conns.redis.get(REARM_KEY))
    except (RedisError, OSError):
        return 0  # Redis away: nothing to arm in; the overdue sweep still acts
    if cursor == REARM_DONE.encode():
        return 0
    after = _parse_cursor(cursor)
    rows = await store.timers_after(conns.db, after, REARM_BATCH)
    for row in rows:
        await jobs.enqueue_sla_timer(conns, row["conversation_id"], row["next_timer_at"])
    last = rows[-1] if len(rows) == REARM_BATCH else None
    marker = REARM_DONE
    if last is not None:
        marker = f"{last['next_timer_at'].isoformat()}|{last['conversation_id']}"
    with contextlib.suppress(RedisError, OSError):
        await _redis_call(conns.redis.set(REARM_KEY, marker))
    if rows:
        logger.info("sla timers armed again", extra={"count": len(rows), "done": last is None})
    return len(rows)


def _parse_cursor(raw: bytes | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        at, conversation_id = raw.decode().split("|")
        return datetime.fromisoformat(at), int(conversation_id)
    except ValueError:
        return None


async def _redis_call(awaitable: Any) -> Any:
    async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
        return await awaitable
