"""SLA policies: the service standard a conversation is held to.

A policy has up to three targets (first response, next response, resolution; at least one),
a clock (business: only time inside business hours counts, by the policy's calendar or, when
it names none, the default calendar at evaluation time; calendar: every second counts), an
optional warning at a share of each target, and what a breach escalates to (raise the
priority, move to a team, e-mail an address). Admins write targets in whole minutes; they are
kept as timedeltas (seconds in the database). Pure: the SLA engine reads these.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from contactcenter.domain.enums import SlaClock
from contactcenter.domain.errors import Invalid
from contactcenter.domain.identities import normalise_email

MAX_TARGET = timedelta(days=90)
MAX_TARGET_MINUTES = MAX_TARGET // timedelta(minutes=1)
MAX_PRIORITY = 10
MAX_ID = 2**63 - 1
MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 1000
MAX_EMAIL_CHARS = 254
# the API's names of the targets, in minutes, and the policy's attributes they set
TARGET_FIELDS = {
    "first_response_minutes": "first_response",
    "next_response_minutes": "next_response",
    "resolution_minutes": "resolution",
}
ESCALATION_KEYS = ("raise_priority_to", "team_id", "notify_email")


@dataclass(frozen=True)
class Escalation:
    """What a breach does; each action is optional, and none at all is an empty escalation."""

    raise_priority_to: int | None = None
    team_id: int | None = None
    notify_email: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The stored shape: only the actions set."""
        return {
            key: getattr(self, key) for key in ESCALATION_KEYS if getattr(self, key) is not None
        }


@dataclass(frozen=True)
class SlaPolicy:
    id: int
    name: str
    # None: no such target (validate() wants at least one)
    first_response: timedelta | None = None
    next_response: timedelta | None = None
    resolution: timedelta | None = None
    clock: SlaClock = SlaClock.BUSINESS
    # with the business clock: the calendar time is counted by; None: the default calendar
    business_hours_id: int | None = None
    # warn at this percent of each target (1..99); None: no warning
    warning_percent: int | None = None
    escalation: Escalation = field(default_factory=Escalation)
    description: str | None = None

    @property
    def uses_default_calendar(self) -> bool:
        return self.clock == SlaClock.BUSINESS and self.business_hours_id is None

    def targets(self) -> dict[str, timedelta]:
        """The targets the policy has, by name (first_response, next_response, resolution)."""
        found = {name: getattr(self, name) for name in TARGET_FIELDS.values()}
        return {name: target for name, target in found.items() if target is not None}

    def warning_after(self, target: timedelta) -> timedelta | None:
        """How far into a target (measured on the policy's clock) the warning is due, rounded
        down to the microsecond; None when the policy does not warn."""
        if self.warning_percent is None:
            return None
        micros = target // timedelta(microseconds=1)
        return timedelta(microseconds=micros * self.warning_percent // 100)


# --- what admins send ------------------------------------------------------------------------


def target_from_minutes(raw: int | None, name: str) -> timedelta | None:
    """Whole minutes, 1 to 90 days' worth, or None (no such target)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_TARGET_MINUTES:
        raise Invalid(
            f"{name} is a whole number of minutes from 1 to {MAX_TARGET_MINUTES} (90 days)",
            code="invalid_target",
            details={"field": name, "max": MAX_TARGET_MINUTES},
        )
    return timedelta(minutes=raw)


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _priority(value: object) -> int:
    number = _whole(value)
    if number is None or not 0 <= number <= MAX_PRIORITY:
        raise Invalid(
            f"escalation.raise_priority_to is a whole number from 0 to {MAX_PRIORITY}",
            code="invalid_priority",
            details={"field": "escalation.raise_priority_to"},
        )
    return number


def _team(value: object) -> int:
    number = _whole(value)
    if number is None:
        raise Invalid(
            "escalation.team_id is a team's id",
            code="invalid_escalation",
            details={"field": "escalation.team_id"},
        )
    if not 1 <= number <= MAX_ID:
        raise Invalid(
            f"no such team: {number}", code="unknown_team", details={"field": "escalation.team_id"}
        )
    return number


def _email(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_EMAIL_CHARS or not value.isprintable():
        raise Invalid(
            "escalation.notify_email is an e-mail address",
            code="invalid_email",
            details={"field": "escalation.notify_email"},
        )
    try:
        return normalise_email(value)
    except Invalid as error:
        raise Invalid(
            error.message, code="invalid_email", details={"field": "escalation.notify_email"}
        ) from None


def parse_escalation(raw: Mapping[str, Any]) -> Escalation:
    """{"raise_priority_to": 0..10, "team_id": N, "notify_email": "..."}, each optional (null
    is the same as left out). Whether the team exists is the caller's to check."""
    unknown = sorted(set(raw) - set(ESCALATION_KEYS))
    if unknown:
        raise Invalid(
            f"escalation takes {', '.join(ESCALATION_KEYS)}; not {unknown[0][:40]!r}",
            code="invalid_escalation",
            details={"field": f"escalation.{unknown[0][:40]}"},
        )
    priority, team, email = (raw.get(key) for key in ESCALATION_KEYS)
    return Escalation(
        raise_priority_to=None if priority is None else _priority(priority),
        team_id=None if team is None else _team(team),
        notify_email=None if email is None else _email(email),
    )


def is_one_line(text: str) -> bool:
    """No control characters, lone surrogates or line breaks (spaces of any script are fine)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)


def _name(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_NAME_CHARS or not is_one_line(text):
        raise Invalid(
            f"name is one line of 1 to {MAX_NAME_CHARS} characters",
            code="validation_error",
            details={"field": "name"},
        )
    return text


def _description(value: object) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else None
    if (
        text is None
        or len(text) > MAX_DESCRIPTION_CHARS
        or any(c == "\x00" or unicodedata.category(c) == "Cs" for c in text)
    ):
        raise Invalid(
            f"description is text of at most {MAX_DESCRIPTION_CHARS} characters, without NUL",
            code="validation_error",
            details={"field": "description"},
        )
    return text or None


def _clock(value: object) -> SlaClock:
    try:
        return SlaClock(str(value))
    except ValueError:
        raise Invalid(
            "clock is business or calendar", code="validation_error", details={"field": "clock"}
        ) from None


def apply_changes(policy: SlaPolicy, changes: Mapping[str, Any]) -> SlaPolicy:
    """The policy with an admin's changes (the API's names: name, description,
    first_response_minutes ..., clock, business_hours_id, warning_percent, escalation), checked
    whole. A key left out keeps its value; a target, the calendar, the warning or the
    description set to None is removed. An escalation replaces the stored one whole."""
    updates: dict[str, Any] = {}
    for name in ("name", "business_hours_id", "warning_percent"):
        if name in changes:
            updates[name] = changes[name]
    if "description" in changes:
        updates["description"] = _description(changes["description"])
    for api_name, attribute in TARGET_FIELDS.items():
        if api_name in changes:
            updates[attribute] = target_from_minutes(changes[api_name], api_name)
    if "clock" in changes:
        updates["clock"] = _clock(changes["clock"])
    if "escalation" in changes:
        updates["escalation"] = parse_escalation(changes["escalation"])
    return validate(replace(policy, **updates))


def draft(values: Mapping[str, Any]) -> SlaPolicy:
    """A new policy from what an admin sent (apply_changes' names); id 0 until inserted."""
    return apply_changes(SlaPolicy(id=0, name=""), values)


def _check_target(name: str, target: timedelta | None) -> None:
    if target is None:
        return
    if target <= timedelta(0) or target > MAX_TARGET or target % timedelta(seconds=1):
        raise Invalid(
            f"{name} is a whole number of seconds from 1 to 90 days",
            code="invalid_target",
            details={"field": name},
        )


def validate(policy: SlaPolicy) -> SlaPolicy:
    """The policy, or Invalid with the code of what is wrong with it."""
    name = _name(policy.name)
    targets = policy.targets()
    if not targets:
        raise Invalid(
            "a policy needs at least one target: first_response_minutes, next_response_minutes"
            " or resolution_minutes",
            code="no_target",
        )
    for target_name, target in targets.items():
        _check_target(target_name, target)
    if policy.clock == SlaClock.CALENDAR and policy.business_hours_id is not None:
        raise Invalid(
            "a policy on the calendar clock counts every second: leave business_hours_id null,"
            " or use the business clock",
            code="conflicting_clock",
            details={"field": "business_hours_id"},
        )
    if policy.warning_percent is not None and not 1 <= policy.warning_percent <= 99:
        raise Invalid(
            "warning_percent is a whole number from 1 to 99 (or null: no warning)",
            code="invalid_warning_percent",
            details={"field": "warning_percent"},
        )
    return replace(policy, name=name)
