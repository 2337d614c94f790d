"""Where a conversation goes: the routing decision, pure.

Today a conversation keeps the team it has (a reopened one goes back to its team) or goes to
the default team. Routing rules, tiers and SLA policies extend ``decide_route``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteDecision:
    team_id: int | None
    priority: int


def decide_route(
    *, current_team_id: int | None, current_priority: int, default_team_id: int | None
) -> RouteDecision:
    team_id = current_team_id if current_team_id is not None else default_team_id
    return RouteDecision(team_id=team_id, priority=current_priority)
