"""The signed-in agent, and what they may see."""

from __future__ import annotations

from dataclasses import dataclass

from contactcenter.domain.enums import Role


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    email: str
    role: Role
    team_ids: tuple[int, ...]

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)

    def can_see(self, team_id: int | None, assignee_id: int | None) -> bool:
        """Agents see their own conversations and their teams'; supervisors and admins all."""
        return (
            self.sees_everything
            or assignee_id == self.id
            or (team_id is not None and team_id in self.team_ids)
        )
