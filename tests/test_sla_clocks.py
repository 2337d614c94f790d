"""SLA clock rules, purely: first response, next-response cycles, resolution paused while
pending or snoozed, resolve and reopen, warnings in business time, repeats and late events.
Business time: Mon-Fri 09:00-18:00 Asia/Shanghai; calendar time: no calendar."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from contactcenter.domain.business_hours import Calendar, Period
from contactcenter.domain.enums import ConversationStatus, SlaClock
from contactcenter.domain.sla import (
    AgentReplySent,
    CustomerMessage,
    Measured,
    Paused,
    Reopened,
    Resolved,
    Resumed,
    SlaClocks,
    SlaEvent,
    SlaKind,
    SlaStage,
    SlaState,
    Timer,
    apply,
    breached,
    customer_message_events,
    due_timers,
    live_state,
    measured,
    pending_timers,
    start,
    status_events,
    still_current,
    timer_key,
)
from contactcenter.domain.sla_policies import SlaPolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")
NINE_TO_SIX = (Period(time(9), time(18)),)
OFFICE = Calendar(
    id=1,
    name="Office",
    timezone="Asia/Shanghai",
    weekly={day: NINE_TO_SIX for day in ("mon", "tue", "wed", "thu", "fri")},
)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)

FULL = SlaPolicy(
    id=1,
    name="Gold",
    first_response=HOUR,
    next_response=2 * HOUR,
    resolution=8 * HOUR,
    clock=SlaClock.BUSINESS,
)
FULL_24_7 = SlaPolicy(
    id=2,
    name="24/7",
    first_response=HOUR,
    next_response=2 * HOUR,
    resolution=8 * HOUR,
    clock=SlaClock.CALENDAR,
)


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in March 2026, Shanghai time (2026-03-02 is a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


def run(
    policy: SlaPolicy, calendar: Calendar | None, first: datetime, events: Iterable[SlaEvent]
) -> SlaClocks:
    clocks = start(policy, calendar, first)
    for event in events:
        clocks = apply(clocks, event, policy, calendar)
    return clocks


def timers(clocks: SlaClocks) -> set[tuple[SlaKind, SlaStage, datetime]]:
    return {(t.kind, t.stage, t.due_at) for t in due_timers(clocks)}


# --- first response ---------------------------------------------------------------------------


def test_the_first_response_is_due_a_business_hour_after_the_first_message() -> None:
    clocks = start(FULL, OFFICE, sh(2, 17, 30))  # Monday 17:30
    assert clocks.first_response_due_at == sh(3, 9, 30)  # Tuesday 09:30, in UTC
    assert clocks.first_response_due_at.tzinfo == UTC
    assert clocks.resolution_due_at == sh(3, 16, 30)  # 0:30 Monday, 7:30 Tuesday
    assert clocks.next_response_due_at is None
    assert timers(clocks) == {
        (SlaKind.FIRST_RESPONSE, SlaStage.BREACH, sh(3, 9, 30)),
        (SlaKind.RESOLUTION, SlaStage.BREACH, sh(3, 16, 30)),
    }


def test_the_first_response_is_met_by_the_first_agent_reply() -> None:
    clocks = run(FULL, OFFICE, sh(2, 17, 30), [AgentReplySent(sh(3, 9, 20))])
    assert clocks.first_responded_at == sh(3, 9, 20)
    assert clocks.first_response_due_at == sh(3, 9, 30)  # kept for reporting
    assert SlaKind.FIRST_RESPONSE not in {t.kind for t in due_timers(clocks)}
    assert SlaKind.FIRST_RESPONSE not in breached(clocks, sh(9, 9))
    # a second reply changes nothing
    again = apply(clocks, AgentReplySent(sh(3, 11)), FULL, OFFICE)
    assert again.first_responded_at == sh(3, 9, 20)


def test_a_late_first_response_is_a_breach() -> None:
    clocks = start(FULL, OFFICE, sh(2, 17, 30))
    assert breached(clocks, sh(3, 9, 30) - TICK) == set()
    assert breached(clocks, sh(3, 9, 30)) == {SlaKind.FIRST_RESPONSE}
    late = apply(clocks, AgentReplySent(sh(3, 10)), FULL, OFFICE)
    assert late.first_responded_at == sh(3, 10)
    assert breached(late, sh(3, 10)) == {SlaKind.FIRST_RESPONSE}
    # replied on the dot: the due instant is the breach
    on_the_dot = apply(clocks, AgentReplySent(sh(3, 9, 30)), FULL, OFFICE)
    assert breached(on_the_dot, sh(3, 10)) == {SlaKind.FIRST_RESPONSE}


def test_a_note_is_no_event_so_the_first_response_stays_open() -> None:
    # an internal note never reaches the SLA clocks: only customer messages keep coming
    clocks = run(FULL, OFFICE, sh(2, 10), [CustomerMessage(sh(2, 10, 20))])
    assert clocks.first_responded_at is None
    assert clocks.next_response_due_at is None  # no agent reply yet: no next-response clock
    assert breached(clocks, sh(2, 11)) == {SlaKind.FIRST_RESPONSE}


# --- next response ----------------------------------------------------------------------------


def test_next_response_cycles() -> None:
    clocks = start(FULL, OFFICE, sh(2, 10))
    clocks = apply(clocks, AgentReplySent(sh(2, 10, 30)), FULL, OFFICE)
    assert clocks.next_response_due_at is None
    clocks = apply(clocks, CustomerMessage(sh(2, 17)), FULL, OFFICE)
    assert clocks.next_response_started_at == sh(2, 17)
    assert clocks.next_response_due_at == sh(3, 10)  # 1 h on Monday, 1 h on Tuesday
    # the customer writes again before the answer: the clock is not restarted
    clocks = apply(clocks, CustomerMessage(sh(3, 9, 15)), FULL, OFFICE)
    assert clocks.next_response_due_at == sh(3, 10)
    assert (SlaKind.NEXT_RESPONSE, SlaStage.BREACH, sh(3, 10)) in timers(clocks)
    assert SlaKind.NEXT_RESPONSE not in breached(clocks, sh(3, 10) - TICK)
    assert SlaKind.NEXT_RESPONSE in breached(clocks, sh(3, 10))
    clocks = apply(clocks, AgentReplySent(sh(3, 9, 40)), FULL, OFFICE)
    assert clocks.next_response_due_at is None
    assert clocks.next_response_started_at is None
    assert SlaKind.NEXT_RESPONSE not in {t.kind for t in due_timers(clocks)}
    # (resolution, 8 h from Monday 10:00, was due Monday 18:00)
    assert breached(clocks, sh(3, 11)) == {SlaKind.RESOLUTION}
    # and the next customer message starts a fresh cycle
    clocks = apply(clocks, CustomerMessage(sh(3, 14)), FULL, OFFICE)
    assert clocks.next_response_due_at == sh(3, 16)


def test_next_response_in_calendar_time_counts_the_night() -> None:
    clocks = run(
        FULL_24_7,
        OFFICE,  # ignored: the policy counts every second
        sh(2, 10),
        [AgentReplySent(sh(2, 10, 30)), CustomerMessage(sh(2, 23))],
    )
    assert clocks.next_response_due_at == sh(3, 1)
    assert clocks.first_response_due_at == sh(2, 11)


# --- pause and resume -------------------------------------------------------------------------


def test_pending_on_the_customer_for_two_business_days_does_not_count() -> None:
    clocks = run(
        FULL,
        OFFICE,
        sh(2, 9),  # Monday 09:00
        [AgentReplySent(sh(2, 10)), Paused(sh(2, 11))],  # 2 h counted
    )
    assert clocks.paused
    assert clocks.resolution_spent == 2 * HOUR
    assert clocks.resolution_due_at is None
    assert clocks.resolution_running_since is None
    assert SlaKind.RESOLUTION not in {t.kind for t in due_timers(clocks)}
    # the customer answers on Thursday 10:00 (Monday 11:00 to Wednesday 18:00 not counted)
    clocks = apply(clocks, Resumed(sh(5, 10)), FULL, OFFICE)
    clocks = apply(clocks, CustomerMessage(sh(5, 10)), FULL, OFFICE)
    assert clocks.resolution_running_since == sh(5, 10)
    assert clocks.resolution_due_at == sh(5, 16)  # 6 h left
    assert clocks.next_response_due_at == sh(5, 12)


def test_snooze_then_wake_in_calendar_time() -> None:
    clocks = run(
        FULL_24_7,
        None,
        sh(2, 9),
        [AgentReplySent(sh(2, 9, 5)), Paused(sh(2, 12)), Resumed(sh(3, 12))],
    )
    assert clocks.resolution_spent == 3 * HOUR
    assert clocks.resolution_due_at == sh(3, 17)


def test_pause_and_resume_twice_is_once() -> None:
    once = run(FULL, OFFICE, sh(2, 9), [Paused(sh(2, 11)), Resumed(sh(3, 9))])
    twice = run(
        FULL,
        OFFICE,
        sh(2, 9),
        [Paused(sh(2, 11)), Paused(sh(2, 15)), Resumed(sh(3, 9)), Resumed(sh(3, 12))],
    )
    assert twice.resolution_spent == once.resolution_spent == 2 * HOUR
    assert twice.resolution_due_at == once.resolution_due_at == sh(3, 15)


def test_a_customer_message_alone_does_not_resume_resolution() -> None:
    clocks = run(FULL, OFFICE, sh(2, 9), [Paused(sh(2, 11)), CustomerMessage(sh(2, 12))])
    assert clocks.paused
    assert clocks.resolution_due_at is None


def test_a_resolution_breached_before_a_pause_stays_breached_without_a_new_timer() -> None:
    short = SlaPolicy(id=3, name="Short", resolution=HOUR, clock=SlaClock.BUSINESS)
    clocks = run(short, OFFICE, sh(2, 9), [Paused(sh(2, 11))])
    assert clocks.resolution_breached_at == sh(2, 10)
    clocks = apply(clocks, Resumed(sh(2, 12)), short, OFFICE)
    assert clocks.resolution_running_since == sh(2, 12)
    assert clocks.resolution_due_at is None
    assert due_timers(clocks) == []
    assert breached(clocks, sh(2, 12)) == {SlaKind.RESOLUTION}


# --- resolve and reopen -----------------------------------------------------------------------


def test_resolving_stops_every_clock() -> None:
    clocks = run(
        FULL,
        OFFICE,
        sh(2, 9),
        [AgentReplySent(sh(2, 9, 30)), CustomerMessage(sh(2, 10)), Resolved(sh(2, 11))],
    )
    assert clocks.stopped_at == sh(2, 11)
    assert clocks.next_response_due_at is None
    assert clocks.resolution_due_at is None
    assert clocks.resolution_spent == 2 * HOUR
    assert due_timers(clocks) == []
    assert breached(clocks, sh(30, 9)) == set()
    # nothing but a reopen moves a resolved conversation's clocks
    for event in (CustomerMessage(sh(2, 12)), AgentReplySent(sh(2, 13)), Resumed(sh(2, 14))):
        assert apply(clocks, event, FULL, OFFICE) == apply(clocks, Resolved(event.at), FULL, OFFICE)
    assert apply(clocks, Resolved(sh(2, 15)), FULL, OFFICE).stopped_at == sh(2, 11)


def test_resolving_before_the_first_reply_leaves_it_unmet_for_good() -> None:
    clocks = run(FULL, OFFICE, sh(2, 9), [Resolved(sh(2, 9, 30)), Reopened(sh(2, 14))])
    assert clocks.first_response_stopped_at == sh(2, 9, 30)
    assert SlaKind.FIRST_RESPONSE not in {t.kind for t in due_timers(clocks)}
    assert breached(clocks, sh(2, 15)) == set()
    # the customer's message after the reopen is measured by the next-response clock
    clocks = apply(clocks, CustomerMessage(sh(2, 14)), FULL, OFFICE)
    assert clocks.next_response_due_at == sh(2, 16)
    clocks = apply(clocks, AgentReplySent(sh(2, 15)), FULL, OFFICE)
    assert clocks.first_responded_at is None


def test_reopen_resumes_resolution_from_the_time_spent() -> None:
    clocks = run(
        FULL,
        OFFICE,
        sh(2, 9),
        [
            AgentReplySent(sh(2, 9, 30)),
            Paused(sh(2, 10)),  # 1 h
            Resumed(sh(2, 14)),
            Resolved(sh(2, 16)),  # + 2 h
            Reopened(sh(4, 9)),
            CustomerMessage(sh(4, 9)),
        ],
    )
    assert clocks.stopped_at is None
    assert clocks.resolution_spent == 3 * HOUR
    assert clocks.resolution_running_since == sh(4, 9)
    assert clocks.resolution_due_at == sh(4, 14)  # 5 h left
    assert clocks.next_response_due_at == sh(4, 11)
    # a reopen while open is nothing
    assert apply(clocks, Reopened(sh(4, 10)), FULL, OFFICE) == apply(
        clocks, Resumed(sh(4, 10)), FULL, OFFICE
    )


# --- warnings ---------------------------------------------------------------------------------


def test_warnings_at_80_percent_in_business_time_across_a_night() -> None:
    policy = SlaPolicy(
        id=4,
        name="Warned",
        first_response=HOUR,
        next_response=2 * HOUR,
        resolution=10 * HOUR,
        clock=SlaClock.BUSINESS,
        warning_percent=80,
    )
    clocks = start(policy, OFFICE, sh(2, 17, 30))  # Monday 17:30
    assert timers(clocks) == {
        (SlaKind.FIRST_RESPONSE, SlaStage.WARNING, sh(3, 9, 18)),  # 30 + 18 = 48 min
        (SlaKind.FIRST_RESPONSE, SlaStage.BREACH, sh(3, 9, 30)),
        (SlaKind.RESOLUTION, SlaStage.WARNING, sh(3, 16, 30)),  # 0:30 + 7:30 = 8 h
        (SlaKind.RESOLUTION, SlaStage.BREACH, sh(4, 9, 30)),  # 0:30 + 9:00 + 0:30
    }
    assert [t.due_at for t in due_timers(clocks)] == sorted(t.due_at for t in due_timers(clocks))
    clocks = apply(clocks, AgentReplySent(sh(3, 9, 10)), policy, OFFICE)
    clocks = apply(clocks, CustomerMessage(sh(3, 17)), policy, OFFICE)
    assert (SlaKind.NEXT_RESPONSE, SlaStage.WARNING, sh(4, 9, 36)) in timers(clocks)
    # paused (dated 12:30, clamped to the customer's 17:00) after the resolution warning
    clocks = apply(clocks, Paused(sh(3, 12, 30)), policy, OFFICE)
    assert clocks.resolution_spent == 8 * HOUR + 30 * MINUTE  # 17:30-18:00 Mon, 09-17 Tue
    assert clocks.resolution_breached_at is None
    clocks = apply(clocks, Resumed(sh(5, 17, 30)), policy, OFFICE)
    # the warning (8 h) was crossed before the pause: not armed again; the breach 1:30 on
    assert {(t.kind, t.stage) for t in due_timers(clocks) if t.kind == SlaKind.RESOLUTION} == {
        (SlaKind.RESOLUTION, SlaStage.BREACH)
    }
    assert clocks.resolution_due_at == sh(6, 10)  # 0:30 Thursday, 1:00 Friday


def test_a_resumed_resolution_warning_is_exact_in_business_time() -> None:
    policy = SlaPolicy(
        id=5, name="W", resolution=10 * HOUR, clock=SlaClock.BUSINESS, warning_percent=80
    )
    clocks = run(policy, OFFICE, sh(2, 9), [Paused(sh(2, 12)), Resumed(sh(3, 16))])
    # 3 h spent; 5 h more to 8 h: 16:00-18:00 Tue, 09:00-12:00 Wed
    assert clocks.resolution_warning_at == sh(4, 12)
    assert clocks.resolution_due_at == sh(4, 14)


# --- late events, partial policies ------------------------------------------------------------


def test_an_event_dated_before_the_last_one_is_clamped() -> None:
    clocks = run(FULL, OFFICE, sh(2, 9), [Paused(sh(2, 11))])
    # a resume dated before the pause: counts as resuming at the pause
    resumed = apply(clocks, Resumed(sh(2, 10)), FULL, OFFICE)
    assert resumed.resolution_running_since == sh(2, 11)
    assert resumed.resolution_spent == 2 * HOUR
    assert resumed.resolution_due_at == sh(2, 17)
    # a pause dated before the latest event banks nothing negative
    paused_again = apply(resumed, Paused(sh(2, 9)), FULL, OFFICE)
    assert paused_again.resolution_spent == 2 * HOUR
    # a late reply still meets the first response, at the latest instant seen
    replied = apply(paused_again, AgentReplySent(sh(2, 9, 30)), FULL, OFFICE)
    assert replied.first_responded_at == sh(2, 11)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        start(FULL, OFFICE, datetime(2026, 3, 2, 9))


@pytest.mark.parametrize("calendar", [OFFICE, None])
def test_a_policy_with_only_a_resolution_target(calendar: Calendar | None) -> None:
    policy = SlaPolicy(id=6, name="Resolve", resolution=4 * HOUR, clock=SlaClock.BUSINESS)
    clocks = run(
        policy,
        calendar,
        sh(2, 9),
        [AgentReplySent(sh(2, 9, 30)), CustomerMessage(sh(2, 10))],
    )
    assert clocks.first_response_due_at is None
    assert clocks.next_response_due_at is None
    assert clocks.next_response_started_at is None
    assert timers(clocks) == {(SlaKind.RESOLUTION, SlaStage.BREACH, sh(2, 13))}
    assert breached(clocks, sh(2, 13)) == {SlaKind.RESOLUTION}


def test_a_policy_with_only_a_next_response_target() -> None:
    policy = SlaPolicy(id=7, name="Next", next_response=30 * MINUTE, clock=SlaClock.CALENDAR)
    clocks = start(policy, None, sh(2, 9))
    assert due_timers(clocks) == []
    clocks = apply(clocks, AgentReplySent(sh(2, 9, 5)), policy, None)
    # no first-response target: nothing due, but the reply is recorded for reporting
    assert clocks.first_responded_at == sh(2, 9, 5)
    assert breached(clocks, sh(3, 9)) == set()
    clocks = apply(clocks, CustomerMessage(sh(2, 20)), policy, None)
    assert due_timers(clocks) == [Timer(SlaKind.NEXT_RESPONSE, SlaStage.BREACH, sh(2, 20, 30))]
    clocks = apply(clocks, Resolved(sh(2, 20, 10)), policy, None)
    assert due_timers(clocks) == []
    assert breached(clocks, sh(3, 9)) == set()


# --- what the engine asks of the clocks -------------------------------------------------------


def test_fired_timers_are_not_pending_and_are_forgotten_when_their_clock_moves() -> None:
    clocks = start(FULL_24_7, None, sh(2, 10))
    first_breach = next(
        t for t in due_timers(clocks) if t.kind == SlaKind.FIRST_RESPONSE and t.stage == "breach"
    )
    fired = frozenset({timer_key(first_breach)})
    assert first_breach not in pending_timers(clocks, fired)
    assert still_current(clocks, fired) == fired
    answered = apply(clocks, AgentReplySent(sh(2, 11, 30)), FULL_24_7, None)
    assert still_current(answered, fired) == frozenset()


def test_live_state_moves_from_ok_to_at_risk_to_breached_and_back() -> None:
    policy = SlaPolicy(
        id=3, name="p", first_response=HOUR, clock=SlaClock.CALENDAR, warning_percent=50
    )
    clocks = start(policy, None, sh(2, 10))
    assert live_state(clocks, sh(2, 10, 29)) == SlaState.OK
    assert live_state(clocks, sh(2, 10, 30)) == SlaState.AT_RISK
    assert live_state(clocks, sh(2, 11)) == SlaState.BREACHED
    late = apply(clocks, AgentReplySent(sh(2, 11, 5)), policy, None)
    assert live_state(late, sh(2, 11, 6)) == SlaState.OK  # answered, late: history now


def test_a_resolution_breached_then_paused_stays_breached_until_resolved() -> None:
    policy = SlaPolicy(id=4, name="p", resolution=HOUR, clock=SlaClock.CALENDAR)
    clocks = run(policy, None, sh(2, 10), [Paused(sh(2, 12))])
    assert live_state(clocks, sh(2, 13)) == SlaState.BREACHED
    resolved = apply(clocks, Resolved(sh(2, 14)), policy, None)
    assert live_state(resolved, sh(2, 15)) == SlaState.OK


def test_a_customer_message_reopens_resumes_or_just_counts() -> None:
    clocks = start(FULL, OFFICE, sh(2, 10))
    at = sh(2, 11)
    assert customer_message_events(clocks, at) == []  # the clocks already wait on the agent
    answered = apply(clocks, AgentReplySent(sh(2, 10, 30)), FULL, OFFICE)
    assert customer_message_events(answered, at) == [CustomerMessage(at)]
    paused = apply(clocks, Paused(sh(2, 10, 30)), FULL, OFFICE)
    assert customer_message_events(paused, at) == [Resumed(at), CustomerMessage(at)]
    resolved = apply(clocks, Resolved(sh(2, 10, 30)), FULL, OFFICE)
    assert customer_message_events(resolved, at) == [Reopened(at), CustomerMessage(at)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (ConversationStatus.PENDING, Paused),
        (ConversationStatus.SNOOZED, Paused),
        (ConversationStatus.RESOLVED, Resolved),
        (ConversationStatus.CLOSED, Resolved),
        (ConversationStatus.OPEN, Resumed),
    ],
)
def test_a_status_change_is_one_event(status: ConversationStatus, expected: type) -> None:
    clocks = start(FULL, OFFICE, sh(2, 10))
    assert status_events(clocks, status, sh(2, 11)) == [expected(sh(2, 11))]


def test_opening_a_resolved_conversation_reopens_it() -> None:
    resolved = run(FULL, OFFICE, sh(2, 10), [Resolved(sh(2, 11))])
    assert status_events(resolved, ConversationStatus.OPEN, sh(2, 12)) == [Reopened(sh(2, 12))]


def test_measured_times_are_on_the_policys_clock() -> None:
    # Monday 17:00 to Tuesday 10:00 is two business hours (17-18, 9-10), not seventeen
    clocks = run(FULL, OFFICE, sh(2, 17), [AgentReplySent(sh(3, 10))])
    assert measured(clocks, FULL, OFFICE) == Measured(first_response=2 * HOUR, resolution=None)
    done = apply(clocks, Resolved(sh(3, 11)), FULL, OFFICE)
    assert measured(done, FULL, OFFICE) == Measured(first_response=2 * HOUR, resolution=3 * HOUR)
    in_calendar_time = run(FULL_24_7, None, sh(2, 17), [AgentReplySent(sh(3, 10))])
    assert measured(in_calendar_time, FULL_24_7, None).first_response == 17 * HOUR


def test_a_reply_queued_before_resolving_and_delivered_after_is_the_first_response() -> None:
    clocks = run(FULL, OFFICE, sh(2, 9), [Resolved(sh(2, 9, 30)), AgentReplySent(sh(2, 9, 31))])
    assert clocks.first_responded_at == sh(2, 9, 31)
    assert clocks.first_response_stopped_at is None
    assert breached(clocks, sh(2, 15)) == set()
    # once answered, a later reply while resolved changes nothing
    again = apply(clocks, AgentReplySent(sh(2, 9, 40)), FULL, OFFICE)
    assert again.first_responded_at == sh(2, 9, 31)


def test_a_calendar_with_no_open_time_makes_clocks_that_never_fall_due() -> None:
    closed = Calendar(id=9, name="Closed", timezone="Asia/Shanghai", weekly={})
    clocks = start(FULL, closed, sh(2, 10))
    assert (clocks.first_response_due_at, clocks.resolution_due_at) == (None, None)
    assert due_timers(clocks) == []
    paused = apply(clocks, Paused(sh(2, 11)), FULL, closed)
    resumed = apply(paused, Resumed(sh(2, 12)), FULL, closed)
    assert resumed.resolution_due_at is None
