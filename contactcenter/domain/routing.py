"""Where a conversation goes: the routing decision, pure.

The matched rules say what they say (domain/rules.py); this combines it with what the
conversation already has: a rule's team wins, else the team it was in (a reopened
conversation goes back to its team), else the default team. Priority never drops on a
re-route: the highest of the current one and the rules'. The SLA policy is the rules', else
the tier's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactcenter.domain.rules import RulesOutcome


@dataclass(frozen=True)
class RouteDecision:
    team_id: int | None
    # where the team came from: "rule", "current" or "default"
    team_source: str
    priority: int
    tier: int
    sla_policy_id: int | None
    # where the SLA policy came from: "rule", "tier" or None (no policy)
    sla_policy_source: str | None
    tags: tuple[str, ...]
    required_skills: tuple[str, ...]
    complaint: bool
    to_account_manager: bool


def decide_route(
    outcome: RulesOutcome,
    *,
    tier: int,
    current_team_id: int | None,
    current_priority: int,
    current_tags: tuple[str, ...] = (),
    tier_sla_policy_id: int | None = None,
    default_team_id: int | None,
) -> RouteDecision:
    team_id: int | None
    if outcome.team_id is not None:
        team_id, source = outcome.team_id, "rule"
    elif current_team_id is not None:
        team_id, source = current_team_id, "current"
    else:
        team_id, source = default_team_id, "default"
    return RouteDecision(
        team_id=team_id,
        team_source=source,
        priority=max(current_priority, outcome.priority or 0),
        tier=tier,
        sla_policy_id=outcome.sla_policy_id or tier_sla_policy_id,
        sla_policy_source=(
            "rule" if outcome.sla_policy_id else "tier" if tier_sla_policy_id else None
        ),
        tags=tuple(dict.fromkeys((*current_tags, *outcome.tags))),
        required_skills=outcome.skills,
        complaint=outcome.complaint,
        to_account_manager=outcome.to_account_manager,
    )


@dataclass(frozen=True)
class Placement:
    """How a routed conversation waits in its team's queue, and the explanation kept with it."""

    now: datetime
    required_skills: tuple[str, ...]
    language: str | None
    preferred_agent_id: int | None
    preferred_until: datetime | None
    explanation: dict[str, Any]


def merge_skills(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({skill for group in groups for skill in group}))
