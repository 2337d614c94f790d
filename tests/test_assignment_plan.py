"""The assignment decision, pure: who gets which waiting conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contactcenter.domain.assignment import (
    AgentLoad,
    Assignment,
    WaitingConversation,
    plan_assignments,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def waiting(
    conversation_id: int, *, minutes_ago: int = 0, priority: int = 0
) -> WaitingConversation:
    return WaitingConversation(conversation_id, priority, T0 - timedelta(minutes=minutes_ago))


def agent(agent_id: int, *, capacity: int = 3, load: int = 0, last: int | None = None) -> AgentLoad:
    last_assigned = None if last is None else T0 - timedelta(minutes=last)
    return AgentLoad(agent_id, capacity, load, last_assigned)


def test_the_least_loaded_agent_gets_the_longest_waiting_conversation() -> None:
    plan = plan_assignments(
        [waiting(1, minutes_ago=1), waiting(2, minutes_ago=9)],
        [agent(10, load=2), agent(11, load=0)],
    )
    assert plan[0] == Assignment(2, 11)


def test_higher_priority_is_served_before_longer_waiting() -> None:
    plan = plan_assignments(
        [waiting(1, minutes_ago=30), waiting(2, minutes_ago=1, priority=5)],
        [agent(10, capacity=1)],
    )
    assert plan == [Assignment(2, 10)]


def test_nobody_is_given_more_than_their_capacity() -> None:
    conversations = [waiting(i, minutes_ago=100 - i) for i in range(1, 20)]
    plan = plan_assignments(conversations, [agent(10, capacity=3, load=1), agent(11, capacity=2)])
    per_agent = {a: sum(1 for p in plan if p.agent_id == a) for a in (10, 11)}
    assert per_agent == {10: 2, 11: 2}
    # the four served are the four that waited longest
    assert sorted(p.conversation_id for p in plan) == [1, 2, 3, 4]


def test_work_is_spread_evenly_and_ties_go_to_who_was_served_least_recently() -> None:
    plan = plan_assignments(
        [waiting(i, minutes_ago=10 - i) for i in range(1, 5)],
        [agent(10, last=1), agent(11, last=30), agent(12, last=5)],
    )
    assert [p.agent_id for p in plan] == [11, 12, 10, 11]


def test_agents_at_capacity_and_an_empty_queue_give_an_empty_plan() -> None:
    assert plan_assignments([waiting(1)], [agent(10, capacity=2, load=2)]) == []
    assert plan_assignments([], [agent(10)]) == []
    assert plan_assignments([waiting(1)], [agent(10, capacity=0)]) == []
