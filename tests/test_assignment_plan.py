"""The assignment decision, pure: who gets which waiting conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contactcenter.domain.assignment import (
    AgentLoad,
    Assignment,
    WaitingConversation,
    plan_assignments,
)
from contactcenter.domain.enums import AssignStrategy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def waiting(
    conversation_id: int,
    *,
    minutes_ago: int = 0,
    priority: int = 0,
    tier: int = 4,
    due_in: int | None = None,
    channel: str = "web",
    skills: tuple[str, ...] = (),
    prefers: int | None = None,
    wait_for_preferred: int | None = None,
) -> WaitingConversation:
    return WaitingConversation(
        conversation_id,
        priority,
        T0 - timedelta(minutes=minutes_ago),
        tier=tier,
        channel=channel,
        sla_due_at=None if due_in is None else T0 + timedelta(minutes=due_in),
        required_skills=frozenset(skills),
        preferred_agent_id=prefers,
        preferred_until=(
            None if wait_for_preferred is None else T0 + timedelta(minutes=wait_for_preferred)
        ),
    )


def agent(
    agent_id: int,
    *,
    capacity: int = 3,
    load: int = 0,
    served: int = 0,
    skills: tuple[str, ...] = (),
    per_channel: dict[str, int] | None = None,
    channel_load: dict[str, int] | None = None,
    in_team: bool = True,
) -> AgentLoad:
    return AgentLoad(
        agent_id,
        capacity,
        load,
        served_seq=served,
        channel_capacity=per_channel or {},
        channel_load=channel_load or {},
        skills=frozenset(skills),
        in_team=in_team,
    )


def pairs(plan: list[Assignment]) -> list[tuple[int, int]]:
    return [(a.conversation_id, a.agent_id) for a in plan]


def plan(
    conversations: list[WaitingConversation],
    agents: list[AgentLoad],
    *,
    now: datetime = T0,
    strategy: AssignStrategy = AssignStrategy.LEAST_LOADED,
) -> list[Assignment]:
    return plan_assignments(conversations, agents, now=now, strategy=strategy)


def test_the_least_loaded_agent_gets_the_longest_waiting_conversation() -> None:
    result = plan(
        [waiting(1, minutes_ago=1), waiting(2, minutes_ago=9)], [agent(10, load=2), agent(11)]
    )
    assert pairs(result)[0] == (2, 11)
    assert result[0].reason == "least_loaded"
    assert (result[0].load, result[0].capacity) == (0, 3)


def test_higher_priority_is_served_before_longer_waiting() -> None:
    result = plan(
        [waiting(1, minutes_ago=30), waiting(2, minutes_ago=1, priority=5)], [agent(10, capacity=1)]
    )
    assert pairs(result) == [(2, 10)]


def test_tier_comes_before_priority_then_sla_due_then_wait() -> None:
    conversations = [
        waiting(1, minutes_ago=60, tier=4, priority=9),
        waiting(2, minutes_ago=1, tier=1),
        waiting(3, minutes_ago=5, tier=2, due_in=30),
        waiting(4, minutes_ago=2, tier=2, due_in=10),
        waiting(5, minutes_ago=50, tier=2),
        waiting(6, minutes_ago=3, tier=2, priority=1),
    ]
    result = plan(conversations, [agent(10, capacity=10)])
    assert [a.conversation_id for a in result] == [2, 6, 4, 3, 5, 1]


def test_nobody_is_given_more_than_their_capacity() -> None:
    conversations = [waiting(i, minutes_ago=100 - i) for i in range(1, 20)]
    result = plan(conversations, [agent(10, capacity=3, load=1), agent(11, capacity=2)])
    per_agent = {a: sum(1 for p in result if p.agent_id == a) for a in (10, 11)}
    assert per_agent == {10: 2, 11: 2}
    # the four served are the four that waited longest
    assert sorted(p.conversation_id for p in result) == [1, 2, 3, 4]


def test_least_loaded_spreads_work_and_ties_go_to_who_was_served_least_recently() -> None:
    result = plan(
        [waiting(i, minutes_ago=10 - i) for i in range(1, 5)],
        [agent(10, served=9), agent(11, served=2), agent(12, served=5)],
    )
    assert [p.agent_id for p in result] == [11, 12, 10, 11]


def test_round_robin_goes_by_turn_whatever_the_load() -> None:
    result = plan(
        [waiting(i, minutes_ago=10 - i) for i in range(1, 6)],
        [agent(10, load=2, capacity=9, served=3), agent(11, capacity=9, served=7)],
        strategy=AssignStrategy.ROUND_ROBIN,
    )
    # least loaded would give 11 the first two; round robin alternates from the oldest turn
    assert [p.agent_id for p in result] == [10, 11, 10, 11, 10]
    assert {p.reason for p in result} == {"round_robin"}


def test_a_per_channel_limit_holds_within_the_total() -> None:
    conversations = [
        waiting(1, minutes_ago=9, channel="email"),
        waiting(2, minutes_ago=8, channel="email"),
        waiting(3, minutes_ago=7, channel="sms"),
    ]
    result = plan(
        conversations,
        [agent(10, capacity=5, load=1, per_channel={"email": 1}, channel_load={"email": 1})],
    )
    # the e-mail slot is taken; the SMS behind them still gets served
    assert pairs(result) == [(3, 10)]


def test_skills_must_all_be_there() -> None:
    conversations = [
        waiting(1, minutes_ago=9, skills=("mandarin", "billing")),
        waiting(2, minutes_ago=8, skills=("mandarin",)),
    ]
    result = plan(conversations, [agent(10, skills=("mandarin",)), agent(11, skills=("billing",))])
    # nobody has both: 1 waits, and does not hold up 2
    assert pairs(result) == [(2, 10)]


def test_the_preferred_agent_takes_it_when_free_even_from_outside_the_team() -> None:
    result = plan(
        [waiting(1, prefers=20, wait_for_preferred=5)],
        [agent(10), agent(20, load=2, in_team=False)],
    )
    assert pairs(result) == [(1, 20)]
    assert result[0].reason == "preferred"


def test_within_its_wait_only_the_preferred_agent_may_take_it() -> None:
    conversations = [waiting(1, minutes_ago=2, prefers=20, wait_for_preferred=3), waiting(2)]
    agents = [agent(10), agent(20, capacity=1, load=1, in_team=False)]
    assert pairs(plan(conversations, agents)) == [(2, 10)]
    # once the wait is over the team takes it
    later = plan(conversations, agents, now=T0 + timedelta(minutes=3))
    assert pairs(later) == [(1, 10), (2, 10)]


def test_with_no_wait_a_busy_preferred_agent_is_passed_over_at_once() -> None:
    result = plan([waiting(1, prefers=20)], [agent(10), agent(20, capacity=1, load=1)])
    assert pairs(result) == [(1, 10)]
    assert result[0].reason == "least_loaded"


def test_agents_from_outside_the_team_take_only_what_prefers_them() -> None:
    result = plan(
        [waiting(1, minutes_ago=5), waiting(2, prefers=20), waiting(3, minutes_ago=9, prefers=99)],
        [agent(20, in_team=False)],
    )
    # 1 and 3 waited longer, but only 2 is theirs to take
    assert pairs(result) == [(2, 20)]
