"""Who gets which waiting conversation: the one place the assignment decision is made.

The service layer locks the agents who could take work (the team's online members, and the
online agents the head of the queue prefers), reads their loads and the head of the team's
queue, and asks ``plan_assignments``; it writes back exactly what the plan says.

The queue is served by tier (the top of the pyramid first), then priority, then the nearest
SLA due time, then the longest wait. A conversation goes to an agent only if the agent has a
free slot in total and on its channel and has every skill it needs. A conversation that
prefers an agent (its account manager, or the agent who last served the customer) goes to
them when they can take it; until its wait for them is over nobody else may take it, and
after that the team's strategy picks: least loaded, or round robin (the agent whose last
assignment is oldest). A conversation nobody can take now does not hold up the ones behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from contactcenter.domain.enums import AssignStrategy

# a time later than every SLA due time, for sorting conversations without one last
_NO_DUE = float("inf")


@dataclass(frozen=True)
class WaitingConversation:
    id: int
    priority: int
    waiting_since: datetime
    tier: int = 4
    channel: str = "web"
    sla_due_at: datetime | None = None
    required_skills: frozenset[str] = frozenset()
    preferred_agent_id: int | None = None
    # until then only the preferred agent may take it; None: the team may take it at once
    preferred_until: datetime | None = None


@dataclass(frozen=True)
class AgentLoad:
    id: int
    capacity: int
    load: int
    # when the agent last got work, as an increasing number (0: never)
    served_seq: int = 0
    # per channel; a channel missing from channel_capacity is bounded by the total only
    channel_capacity: Mapping[str, int] = field(default_factory=dict)
    channel_load: Mapping[str, int] = field(default_factory=dict)
    skills: frozenset[str] = frozenset()
    # a member of the team being served; others are here only for conversations preferring them
    in_team: bool = True

    @property
    def free_slots(self) -> int:
        return max(self.capacity - self.load, 0)

    def has_room_on(self, channel: str) -> bool:
        limit = self.channel_capacity.get(channel)
        return limit is None or self.channel_load.get(channel, 0) < limit


@dataclass(frozen=True)
class Assignment:
    conversation_id: int
    agent_id: int
    # "preferred", "least_loaded" or "round_robin"
    reason: str = "least_loaded"
    # the agent's load before and capacity, for the explanation
    load: int = 0
    capacity: int = 0


def queue_order(conversation: WaitingConversation) -> tuple[int, int, float, datetime, int]:
    """Served first: higher tier (rank 1), higher priority, nearer SLA due, longer waiting."""
    due = conversation.sla_due_at.timestamp() if conversation.sla_due_at else _NO_DUE
    return (
        conversation.tier,
        -conversation.priority,
        due,
        conversation.waiting_since,
        conversation.id,
    )


@dataclass
class _Slots:
    """An agent's changing load while a plan is made."""

    agent: AgentLoad
    load: int
    channel_load: dict[str, int]
    served_seq: int

    def can_take(self, conversation: WaitingConversation) -> bool:
        agent = self.agent
        if self.load >= agent.capacity:
            return False
        limit = agent.channel_capacity.get(conversation.channel)
        if limit is not None and self.channel_load.get(conversation.channel, 0) >= limit:
            return False
        return conversation.required_skills <= agent.skills

    def take(self, conversation: WaitingConversation, served_seq: int) -> None:
        self.load += 1
        self.channel_load[conversation.channel] = self.channel_load.get(conversation.channel, 0) + 1
        self.served_seq = served_seq


def _strategy_key(strategy: AssignStrategy, slots: _Slots) -> tuple[int, int, int]:
    if strategy is AssignStrategy.ROUND_ROBIN:
        return (slots.served_seq, 0, slots.agent.id)
    return (slots.load, slots.served_seq, slots.agent.id)


def plan_assignments(
    waiting: list[WaitingConversation],
    agents: list[AgentLoad],
    *,
    now: datetime,
    strategy: AssignStrategy = AssignStrategy.LEAST_LOADED,
) -> list[Assignment]:
    """Give each waiting conversation, in queue order, to the agent the rules above pick;
    never past anyone's capacity."""
    slots = {
        agent.id: _Slots(agent, agent.load, dict(agent.channel_load), agent.served_seq)
        for agent in agents
    }
    # plan-local sequence numbers sort after every stored one
    next_seq = max((agent.served_seq for agent in agents), default=0) + 1
    plan: list[Assignment] = []
    for conversation in sorted(waiting, key=queue_order):
        chosen = _choose(conversation, slots, now, strategy)
        if chosen is None:
            continue
        agent_slots, reason = chosen
        plan.append(
            Assignment(
                conversation.id,
                agent_slots.agent.id,
                reason,
                agent_slots.load,
                agent_slots.agent.capacity,
            )
        )
        agent_slots.take(conversation, next_seq)
        next_seq += 1
    return plan


def _choose(
    conversation: WaitingConversation,
    slots: dict[int, _Slots],
    now: datetime,
    strategy: AssignStrategy,
) -> tuple[_Slots, str] | None:
    preferred = slots.get(conversation.preferred_agent_id or 0)
    if preferred is not None and preferred.can_take(conversation):
        return preferred, "preferred"
    waiting_for_preferred = (
        conversation.preferred_agent_id is not None
        and conversation.preferred_until is not None
        and now < conversation.preferred_until
    )
    if waiting_for_preferred:
        return None
    candidates = [s for s in slots.values() if s.agent.in_team and s.can_take(conversation)]
    if not candidates:
        return None
    best = min(candidates, key=lambda s: _strategy_key(strategy, s))
    return best, str(strategy)
