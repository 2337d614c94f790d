"""SLA clocks: the pure rules by which a conversation's first-response, next-response and
resolution clocks start, pause, stop and fall due (issue 6, item 3), and the timers they ask
for (the due and warning instants behind item 4). No I/O: the engine stores `SlaClocks` per
conversation, feeds it events, and arms a timer for each `Timer` that `due_timers` answers.

The rules:
- `start`: the policy applies from the customer's first message; the first-response and
  resolution clocks run from there.
- First response: met by the first AgentReplySent (a note never becomes an event). Its due time
  is kept after it is met, for reporting.
- Next response: a CustomerMessage that follows an agent reply starts it (due = that message
  plus the target); further customer messages before the agent answers do not restart it; an
  AgentReplySent stops it. It runs whatever the conversation's status (only resolution pauses).
- Resolution: counts from `start`; Paused (pending on the customer, snoozed) stops the counting
  and banks the time counted in `resolution_spent`; Resumed counts on from there
  (due = resume + target - spent). A CustomerMessage alone does not resume: the engine sends
  Resumed first when the customer's message wakes the conversation.
- Resolved stops every clock. Reopened counts resolution on from the time already spent and
  lets the next customer message start a next-response clock (the engine sends Reopened, then
  CustomerMessage, when the customer reopens). A first response not given before resolving
  stays unmet for good (`first_response_stopped_at`), unless an agent reply queued before the
  resolve is delivered while it stays resolved (then the customer was answered: that is the
  first response); the answer after a reopen is measured by the next-response clock.

Time and order: every instant is kept in UTC. Events are applied in the order given; an event
dated earlier than the latest one applied is taken to happen at that latest instant (clamped),
so time never runs backwards: banked time is never negative, a due time is never computed from
before a pause, and a late-arriving event still has its effect. Repeats are harmless: Paused
while paused, Resumed while counting, Resolved while resolved, Reopened while open, a second
customer message or agent reply are no-ops for the clocks. While resolved, only Reopened acts
(and a late-delivered first reply, above).

Due instants: a clock is breached once the time reaches its due instant unmet (a reply at the
due microsecond is late), the instant its breach timer fires. Warnings are at
`policy.warning_after(target)` of counted time, stored as instants (computed with the calendar
when a clock starts or resumes, so they are exact in business time too). A resolution stage
already crossed before a pause is not armed again after it (it fired in its own stretch).

Calendar: the caller passes the calendar business time is counted by (the policy's, or the
default one); a calendar-clock policy ignores it and counts every second. None counts every
second too. A calendar with no open time ahead makes a clock that never falls due.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from contactcenter.domain.business_hours import Calendar
from contactcenter.domain.business_time import add_time, time_between
from contactcenter.domain.enums import ConversationStatus, SlaClock
from contactcenter.domain.errors import Invalid
from contactcenter.domain.sla_policies import SlaPolicy

_ZERO = timedelta(0)


class SlaKind(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class SlaStage(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerMessage:
    at: datetime


@dataclass(frozen=True)
class AgentReplySent:
    """A reply actually sent to the customer (never a note)."""

    at: datetime


@dataclass(frozen=True)
class Paused:
    """The conversation became pending on the customer, or was snoozed."""

    at: datetime


@dataclass(frozen=True)
class Resumed:
    """Pending or snoozed no more: the customer wrote, the snooze woke, an agent reopened."""

    at: datetime


@dataclass(frozen=True)
class Resolved:
    at: datetime


@dataclass(frozen=True)
class Reopened:
    at: datetime


SlaEvent = CustomerMessage | AgentReplySent | Paused | Resumed | Resolved | Reopened


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaClocks:
    """What is stored per conversation. Every instant is UTC. A due or warning instant is None
    when its clock does not run (or the policy has no such target / no warning)."""

    # the policy applies from here (the customer's first message)
    started_at: datetime
    # the latest event instant applied (later events dated before it are clamped to it)
    last_event_at: datetime
    first_response_due_at: datetime | None
    first_response_warning_at: datetime | None
    first_responded_at: datetime | None
    # resolved before any reply: the first response stays unmet for good
    first_response_stopped_at: datetime | None
    # an agent reply was sent and no customer message since: the next one starts a clock
    awaiting_customer: bool
    next_response_started_at: datetime | None
    next_response_due_at: datetime | None
    next_response_warning_at: datetime | None
    resolution_due_at: datetime | None
    resolution_warning_at: datetime | None
    # time counted toward resolution before the current stretch (business or calendar time)
    resolution_spent: timedelta
    # counting since; None while paused or resolved
    resolution_running_since: datetime | None
    # the resolution due instant, when the clock was paused or stopped at or after it
    resolution_breached_at: datetime | None
    stopped_at: datetime | None

    @property
    def paused(self) -> bool:
        return self.stopped_at is None and self.resolution_running_since is None

    def first_response_open(self) -> bool:
        """No reply yet, and not resolved before one (tracked without a target too, for
        reporting)."""
        return self.first_responded_at is None and self.first_response_stopped_at is None


@dataclass(frozen=True)
class Timer:
    kind: SlaKind
    stage: SlaStage
    due_at: datetime


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("SLA instants must be aware datetimes")
    return moment.astimezone(UTC)


def _calendar(policy: SlaPolicy, calendar: Calendar | None) -> Calendar | None:
    return calendar if policy.clock == SlaClock.BUSINESS else None


def _due(
    policy: SlaPolicy,
    calendar: Calendar | None,
    since: datetime,
    target: timedelta | None,
    spent: timedelta = _ZERO,
) -> tuple[datetime | None, datetime | None]:
    """(breach, warning) instants of a clock counting from `since` with `spent` already
    counted; a stage already reached (spent at or past it) or without a target is None."""
    if target is None:
        return None, None
    breach = _add(calendar, since, target - spent) if spent < target else None
    warn_after = policy.warning_after(target)
    warning = None
    if warn_after is not None and spent < warn_after:
        warning = _add(calendar, since, warn_after - spent)
    return breach, warning


def _add(calendar: Calendar | None, since: datetime, amount: timedelta) -> datetime | None:
    """`since` plus `amount` on the clock; None (never due) on a calendar with no open time
    ahead: a clock that cannot count never falls due, and never fails the conversation's
    change (a message, a reply) it is computed in."""
    try:
        return add_time(calendar, since, amount)
    except Invalid as error:
        if error.code == "no_business_hours":
            return None
        raise


def start(policy: SlaPolicy, calendar: Calendar | None, at: datetime) -> SlaClocks:
    """The clocks of a conversation the policy applies to from `at` (the customer's first
    message): first response and resolution run."""
    at = _utc(at)
    calendar = _calendar(policy, calendar)
    first_due, first_warning = _due(policy, calendar, at, policy.first_response)
    resolution_due, resolution_warning = _due(policy, calendar, at, policy.resolution)
    return SlaClocks(
        started_at=at,
        last_event_at=at,
        first_response_due_at=first_due,
        first_response_warning_at=first_warning,
        first_responded_at=None,
        first_response_stopped_at=None,
        awaiting_customer=False,
        next_response_started_at=None,
        next_response_due_at=None,
        next_response_warning_at=None,
        resolution_due_at=resolution_due,
        resolution_warning_at=resolution_warning,
        resolution_spent=_ZERO,
        resolution_running_since=at,
        resolution_breached_at=None,
        stopped_at=None,
    )


# --- transitions -----------------------------------------------------------------------------


def _without_next_response(clocks: SlaClocks) -> SlaClocks:
    return replace(
        clocks,
        next_response_started_at=None,
        next_response_due_at=None,
        next_response_warning_at=None,
    )


def _customer_message(
    clocks: SlaClocks, at: datetime, policy: SlaPolicy, calendar: Calendar | None
) -> SlaClocks:
    if not clocks.awaiting_customer:
        return clocks
    due, warning = _due(policy, calendar, at, policy.next_response)
    return replace(
        clocks,
        awaiting_customer=False,
        next_response_started_at=at if policy.next_response is not None else None,
        next_response_due_at=due,
        next_response_warning_at=warning,
    )


def _agent_reply(clocks: SlaClocks, at: datetime) -> SlaClocks:
    responded = at if clocks.first_response_open() else clocks.first_responded_at
    replied = replace(clocks, awaiting_customer=True, first_responded_at=responded)
    return _without_next_response(replied)


def _stop_resolution(clocks: SlaClocks, at: datetime, calendar: Calendar | None) -> SlaClocks:
    """Bank the time counted since the clock last ran (no-op when it does not run)."""
    since = clocks.resolution_running_since
    if since is None:
        return clocks
    due = clocks.resolution_due_at
    breached = clocks.resolution_breached_at
    if due is not None and at >= due:
        breached = due
    return replace(
        clocks,
        resolution_spent=clocks.resolution_spent + time_between(calendar, since, at),
        resolution_running_since=None,
        resolution_due_at=None,
        resolution_warning_at=None,
        resolution_breached_at=breached,
    )


def _run_resolution(
    clocks: SlaClocks, at: datetime, policy: SlaPolicy, calendar: Calendar | None
) -> SlaClocks:
    due, warning = _due(policy, calendar, at, policy.resolution, clocks.resolution_spent)
    return replace(
        clocks,
        resolution_running_since=at,
        resolution_due_at=due,
        resolution_warning_at=warning,
    )


def _resolve(clocks: SlaClocks, at: datetime, calendar: Calendar | None) -> SlaClocks:
    stopped = _stop_resolution(clocks, at, calendar)
    unmet = at if clocks.first_response_open() else clocks.first_response_stopped_at
    resolved = replace(
        stopped, stopped_at=at, awaiting_customer=False, first_response_stopped_at=unmet
    )
    return _without_next_response(resolved)


def _reopen(
    clocks: SlaClocks, at: datetime, policy: SlaPolicy, calendar: Calendar | None
) -> SlaClocks:
    reopened = replace(clocks, stopped_at=None, awaiting_customer=True)
    return _run_resolution(reopened, at, policy, calendar)


def apply(
    clocks: SlaClocks, event: SlaEvent, policy: SlaPolicy, calendar: Calendar | None
) -> SlaClocks:
    """The clocks after `event` (see the module's rules; an event dated before the latest one
    applied counts as happening at that latest instant)."""
    at = max(_utc(event.at), clocks.last_event_at)
    calendar = _calendar(policy, calendar)
    clocks = replace(clocks, last_event_at=at)
    if clocks.stopped_at is not None:
        if isinstance(event, Reopened):
            return _reopen(clocks, at, policy, calendar)
        if isinstance(event, AgentReplySent) and clocks.first_response_stopped_at is not None:
            # a reply queued before resolving and delivered after: the customer was answered
            return replace(clocks, first_responded_at=at, first_response_stopped_at=None)
        return clocks
    if isinstance(event, CustomerMessage):
        return _customer_message(clocks, at, policy, calendar)
    if isinstance(event, AgentReplySent):
        return _agent_reply(clocks, at)
    if isinstance(event, Paused):
        return _stop_resolution(clocks, at, calendar)
    if isinstance(event, Resumed):
        if clocks.paused:
            return _run_resolution(clocks, at, policy, calendar)
        return clocks
    if isinstance(event, Resolved):
        return _resolve(clocks, at, calendar)
    return clocks  # Reopened while open


# --- what is due -----------------------------------------------------------------------------


def due_timers(clocks: SlaClocks) -> list[Timer]:
    """A timer for each stage of each running clock still to come (or come and not yet acted
    on: the engine compares with now), by due instant. Warnings and dues are stored instants,
    so no calendar or policy is needed here."""
    stages: list[tuple[SlaKind, SlaStage, datetime | None]] = []
    if clocks.stopped_at is None and clocks.first_response_open():
        stages += [
            (SlaKind.FIRST_RESPONSE, SlaStage.WARNING, clocks.first_response_warning_at),
            (SlaKind.FIRST_RESPONSE, SlaStage.BREACH, clocks.first_response_due_at),
        ]
    stages += [
        (SlaKind.NEXT_RESPONSE, SlaStage.WARNING, clocks.next_response_warning_at),
        (SlaKind.NEXT_RESPONSE, SlaStage.BREACH, clocks.next_response_due_at),
        (SlaKind.RESOLUTION, SlaStage.WARNING, clocks.resolution_warning_at),
        (SlaKind.RESOLUTION, SlaStage.BREACH, clocks.resolution_due_at),
    ]
    timers = [Timer(kind, stage, due) for kind, stage, due in stages if due is not None]
    return sorted(timers, key=lambda timer: (timer.due_at, timer.stage == SlaStage.BREACH))


def _first_response_breached(clocks: SlaClocks, now: datetime) -> bool:
    due = clocks.first_response_due_at
    if due is None:
        return False
    end = clocks.first_responded_at or clocks.first_response_stopped_at or now
    return end >= due


def breached(clocks: SlaClocks, now: datetime) -> set[SlaKind]:
    """The clocks breached as of `now`: a first response given (or resolved without one) at or
    after its due instant, or still owed then; the current next-response clock past due; the
    resolution clock past due in any stretch."""
    now = _utc(now)
    found: set[SlaKind] = set()
    if _first_response_breached(clocks, now):
        found.add(SlaKind.FIRST_RESPONSE)
    if clocks.next_response_due_at is not None and now >= clocks.next_response_due_at:
        found.add(SlaKind.NEXT_RESPONSE)
    resolution_due = clocks.resolution_due_at
    if clocks.resolution_breached_at is not None or (
        resolution_due is not None and now >= resolution_due
    ):
        found.add(SlaKind.RESOLUTION)
    return found


class SlaState(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"


def timer_key(timer: Timer) -> str:
    """The timer's identity: its clock, stage and instant (a clock that starts again makes new
    keys; the same stretch always the same one)."""
    return f"{timer.kind}:{timer.stage}:{timer.due_at.isoformat()}"


def pending_timers(clocks: SlaClocks, fired: frozenset[str]) -> list[Timer]:
    """The timers of the running clocks not yet acted on (`fired` holds their keys), by due
    instant; those at or before now are the ones to act on."""
    return [timer for timer in due_timers(clocks) if timer_key(timer) not in fired]


def still_current(clocks: SlaClocks, fired: frozenset[str]) -> frozenset[str]:
    """The fired keys that still name a timer of the running clocks (the rest are history)."""
    return fired & {timer_key(timer) for timer in due_timers(clocks)}


def earliest_due(clocks: SlaClocks) -> datetime | None:
    """The nearest breach instant of a clock still running (the queue serves it first)."""
    dues = [t.due_at for t in due_timers(clocks) if t.stage == SlaStage.BREACH]
    return min(dues, default=None)


def live_state(clocks: SlaClocks, now: datetime) -> SlaState:
    """What needs attention now: breached while a clock that still runs (or an unresolved
    resolution clock) is past due; at risk once a running clock passed its warning; else ok.
    A late first reply, once given, no longer counts; a breached resolution counts until the
    conversation is resolved."""
    now = _utc(now)
    if clocks.stopped_at is not None:
        return SlaState.OK
    stages = [(t.stage, t.due_at) for t in due_timers(clocks)]
    if clocks.resolution_breached_at is not None:
        return SlaState.BREACHED
    if any(stage == SlaStage.BREACH and due <= now for stage, due in stages):
        return SlaState.BREACHED
    if any(stage == SlaStage.WARNING and due <= now for stage, due in stages):
        return SlaState.AT_RISK
    return SlaState.OK


# --- what the conversation's life means to the clocks ----------------------------------------


def customer_message_events(clocks: SlaClocks, at: datetime) -> list[SlaEvent]:
    """A customer's message makes the conversation open again: a resolved one is reopened, a
    pending or snoozed one resumes, and then the message itself counts. None at all when it
    changes nothing (the clocks already wait on the agent), so the engine need not look."""
    if clocks.stopped_at is not None:
        return [Reopened(at), CustomerMessage(at)]
    if clocks.paused:
        return [Resumed(at), CustomerMessage(at)]
    return [CustomerMessage(at)] if clocks.awaiting_customer else []


def status_events(clocks: SlaClocks, status: ConversationStatus, at: datetime) -> list[SlaEvent]:
    """An agent's (or the snooze's) change of status: pending and snoozed pause resolution,
    resolved and closed stop every clock, open resumes or reopens."""
    if status in (ConversationStatus.PENDING, ConversationStatus.SNOOZED):
        return [Paused(at)]
    if status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
        return [Resolved(at)]
    if clocks.stopped_at is not None:
        return [Reopened(at)]
    return [Resumed(at)]


def measured(clocks: SlaClocks, policy: SlaPolicy, calendar: Calendar | None) -> Measured:
    """The first-response and resolution times on the policy's clock, for reports: None while
    not given (first response) or not resolved (resolution)."""
    calendar = _calendar(policy, calendar)
    first = None
    if clocks.first_responded_at is not None:
        first = time_between(calendar, clocks.started_at, clocks.first_responded_at)
    resolution = clocks.resolution_spent if clocks.stopped_at is not None else None
    return Measured(first_response=first, resolution=resolution)


@dataclass(frozen=True)
class Measured:
    first_response: timedelta | None
    resolution: timedelta | None
