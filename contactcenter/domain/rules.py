"""Routing rules: what an admin says about where work goes, evaluated purely.

INTERFACE (shared by the route job and the dry run; the helper building rules fills in the
evaluation and may add to these types, but keeps these names and fields):
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RoutingFacts:
    """Everything a rule's conditions may test, gathered before evaluation."""

    channel: str
    mailbox_id: int | None
    sms_number_id: int | None
    tier: int
    contact_tags: tuple[str, ...]
    contact_fields: dict[str, Any]
    subject: str | None
    text: str
    # primary language subtag ("zh", "en"), detected from subject and text; None if unknown
    language: str | None
    at: datetime
    # whether `at` is inside the calendar a business-hours condition names: calendar id ->
    # open?  (None is the default calendar)
    open_calendars: dict[int | None, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchedRule:
    id: int
    name: str


@dataclass(frozen=True)
class RulesOutcome:
    """What the matched rules decided; None / empty where no rule said anything."""

    matched: tuple[MatchedRule, ...] = ()
    team_id: int | None = None
    priority: int | None = None
    sla_policy_id: int | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    to_account_manager: bool = False
    complaint: bool = False
    auto_reply: str | None = None
    # the rule whose auto-reply it is
    auto_reply_rule_id: int | None = None
