"""Who gets which waiting conversation: the one place the assignment decision is made.

The service layer locks the team's online agents, reads their loads and the head of the
team's queue, and asks ``plan_assignments``; it writes back exactly what the plan says.
Later rules (tiers, SLA due times, skills, stickiness) extend the two keys below.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WaitingConversation:
    id: int
    priority: int
    waiting_since: datetime


@dataclass(frozen=True)
class AgentLoad:
    id: int
    capacity: int
    load: int
    last_assigned_at: datetime | None

    @property
    def free_slots(self) -> int:
        return max(self.capacity - self.load, 0)


@dataclass(frozen=True)
class Assignment:
    conversation_id: int
    agent_id: int


def queue_order(conversation: WaitingConversation) -> tuple[int, datetime, int]:
    """Served first: higher priority, then longer waiting, then older id."""
    return (-conversation.priority, conversation.waiting_since, conversation.id)


def _agent_order(load: int, served_seq: int, agent: AgentLoad) -> tuple[int, int, float, int]:
    """Least loaded first; on a tie the agent who got work least recently."""
    last = agent.last_assigned_at.timestamp() if agent.last_assigned_at else float("-inf")
    return (load, served_seq, last, agent.id)


def plan_assignments(
    waiting: list[WaitingConversation], agents: list[AgentLoad]
) -> list[Assignment]:
    """Give the head of the queue to the least-loaded agents, never past anyone's capacity."""
    by_id = {agent.id: agent for agent in agents}
    heap = [(_agent_order(a.load, 0, a), a.id) for a in agents if a.free_slots > 0]
    heapq.heapify(heap)
    loads = {agent.id: agent.load for agent in agents}
    plan = []
    for served_seq, conversation in enumerate(sorted(waiting, key=queue_order), start=1):
        if not heap:
            break
        _, agent_id = heapq.heappop(heap)
        plan.append(Assignment(conversation.id, agent_id))
        loads[agent_id] += 1
        agent = by_id[agent_id]
        if loads[agent_id] < agent.capacity:
            heapq.heappush(heap, (_agent_order(loads[agent_id], served_seq, agent), agent_id))
    return plan
