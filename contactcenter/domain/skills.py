"""Skill names: what a team's work needs and what an agent can do, compared as plain strings.

A skill is stored normalised (trimmed, lowercase, [a-z0-9_-], 1 to 50 characters), so "Billing"
and " billing" are one skill, and the assignment can compare with array operators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from contactcenter.domain.errors import Invalid

SKILL = re.compile(r"[a-z0-9_-]{1,50}")
MAX_SKILLS = 50


def normalise_skill(raw: str) -> str:
    value = raw.strip().lower()
    if not SKILL.fullmatch(value):
        raise Invalid(
            f"{raw[:60]!r} is not a skill: use 1 to 50 of a-z, 0-9, _ and -",
            code="invalid_skill",
            details={"skill": raw[:60]},
        )
    return value


def normalise_skills(raw: Iterable[str]) -> tuple[str, ...]:
    """Sorted and without duplicates, so equal sets of skills are stored alike."""
    skills = sorted({normalise_skill(value) for value in raw})
    if len(skills) > MAX_SKILLS:
        raise Invalid(
            f"at most {MAX_SKILLS} skills", code="invalid_skill", details={"max": MAX_SKILLS}
        )
    return tuple(skills)
