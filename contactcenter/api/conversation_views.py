"""The shapes of the unified inbox's answers: an inbox item, a conversation with its
messages, routing explanation, SLA clocks and contact, and what each action answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contactcenter.api.contacts import ContactCard, TierRank
from contactcenter.api.openapi import View, left_out
from contactcenter.domain.enums import (
    Channel,
    ConversationStatus,
    Direction,
    MessageStatus,
    Presence,
)
from contactcenter.domain.sla import SlaKind, SlaStage, SlaState

VIEWS = ("mine", "team", "unassigned", "all")
# the inbox shows what needs attention: past a warning, or past a target
SLA_FILTERS = ("at_risk", "breached")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100


# the statuses an agent may set (the API's answer names the one set)
SettableStatus = Literal["open", "pending", "snoozed", "resolved"]


class InboxItem(View):
    """A conversation in the inbox list."""

    id: int
    status: ConversationStatus
    channel: Channel
    priority: int
    team_id: int | None
    assignee_id: int | None
    subject: str | None
    waiting_since: datetime | None
    assigned_at: datetime | None
    snoozed_until: datetime | None
    last_message_at: datetime
    created_at: datetime
    contact_id: int
    contact_name: str | None
    tier: TierRank
    is_complaint: bool
    tags: list[str]
    sla_due_at: datetime | None
    sla_state: SlaState
    preview: str | None = Field(
        description="the start of the latest message that is not a note (140 characters)"
    )


# the routing explanation (conversations.routing): what routing decided and why, and what
# people and the SLA engine did with the conversation since


class RoutedTier(View):
    rank: TierRank
    label: str
    pinned: bool


class MatchedRule(View):
    id: int
    name: str


class RoutedTeam(View):
    id: int
    name: str
    source: Literal["rule", "current", "default", "recovery"] = Field(
        description="a rule chose it, the conversation was in it already, it is the default "
        "team, or a low satisfaction score opened a recovery there"
    )


class RoutedSlaPolicy(View):
    id: int
    source: Literal["rule", "tier"]


class Preferred(View):
    agent_id: int
    reason: Literal["account_manager", "last_agent"]
    until: datetime | None = Field(description="until when the team waits for this agent")


class Recovery(View):
    from_conversation_id: int
    score: int
    answered_by: Literal["sms", "link"]


class AssignmentNote(View):
    agent_id: int
    reason: Literal[
        "least_loaded",
        "round_robin",
        "preferred",
        "account_manager",
        "last_agent",
        "transfer",
        "recovery_supervisor",
    ]
    at: datetime
    load_before: int = left_out()
    capacity: int = left_out()
    by: int = left_out()


class TransferNote(View):
    by: int
    from_team_id: int | None
    from_agent_id: int | None
    to_team_id: int
    to_agent_id: int | None
    at: datetime


class OverflowNote(View):
    from_team_id: int
    to_team_id: int
    at: datetime


class EscalationNote(View):
    """A breach's escalation: [before, after] of what it changed, null where it changed
    nothing; unassigned: the agent it took the conversation from."""

    at: datetime
    kind: SlaKind
    policy_id: int
    priority: tuple[int, int] | None
    team: tuple[int | None, int] | None
    unassigned: int | None


class Routing(View):
    """Why the conversation is where it is. Every key is missing until something set it."""

    routed_at: datetime = left_out()
    tier: RoutedTier = left_out()
    rules: list[MatchedRule] = left_out()
    team: RoutedTeam = left_out()
    priority: int = left_out()
    sla_policy: RoutedSlaPolicy | None = left_out()
    complaint: bool = left_out()
    language: str | None = left_out()
    rule_skills: list[str] = left_out()
    preferred: Preferred | None = left_out()
    recovery: Recovery = left_out()
    assignment: AssignmentNote = left_out()
    transfers: list[TransferNote] = left_out()
    overflows: list[OverflowNote] = left_out()
    escalations: list[EscalationNote] = left_out()


class MessageView(View):
    """A message as agents see it: the customer's, a reply (with its delivery status) or an
    internal note."""

    id: int
    conversation_id: int
    direction: Direction
    is_note: bool
    channel: Channel
    external_id: str | None = Field(
        description="the channel's id of it: e-mail Message-ID, Twilio MessageSid, or the web "
        "client's message id"
    )
    author_agent_id: int | None
    author_name: str | None
    body_text: str
    status: MessageStatus
    error_code: str | None
    error_message: str | None
    sent_at: datetime | None
    created_at: datetime


class PastConversation(View):
    id: int
    channel: Channel
    status: ConversationStatus
    created_at: datetime
    resolved_at: datetime | None


class ConversationContact(ContactCard):
    past_conversations: list[PastConversation] = Field(
        description="the contact's other conversations the caller may open, newest first (20)"
    )


class SlaPolicyRef(View):
    id: int | None
    name: str | None


class FirstResponseClock(View):
    due_at: datetime | None
    responded_at: datetime | None
    seconds: float | None


class NextResponseClock(View):
    started_at: datetime | None
    due_at: datetime | None


class ResolutionClock(View):
    due_at: datetime | None
    paused: bool
    breached_at: datetime | None
    resolved_at: datetime | None
    spent_seconds: float


class EscalationDone(View):
    """What a breach's escalation did (the keys of EscalationNote that are not null); empty
    for a warning, or a breach that changed nothing."""

    at: datetime = left_out()
    kind: SlaKind = left_out()
    policy_id: int = left_out()
    priority: tuple[int, int] = left_out()
    team: tuple[int | None, int] = left_out()
    unassigned: int = left_out()


class SlaEventView(View):
    id: int
    kind: SlaKind
    stage: SlaStage
    due_at: datetime
    fired_at: datetime
    escalation: EscalationDone


class ConversationSla(View):
    policy: SlaPolicyRef
    state: SlaState
    started_at: datetime
    first_response: FirstResponseClock
    next_response: NextResponseClock
    resolution: ResolutionClock
    events: list[SlaEventView]


class ConversationDetail(View):
    id: int
    contact_id: int
    channel: Channel
    status: ConversationStatus
    priority: int
    team_id: int | None
    assignee_id: int | None
    subject: str | None
    waiting_since: datetime | None
    assigned_at: datetime | None
    snoozed_until: datetime | None
    first_responded_at: datetime | None
    resolved_at: datetime | None
    last_message_at: datetime
    created_at: datetime
    updated_at: datetime
    mailbox_id: int | None
    sms_number_id: int | None
    tier: TierRank
    is_complaint: bool
    tags: list[str]
    language: str | None
    sla_policy_id: int | None
    sla_due_at: datetime | None
    required_skills: list[str]
    preferred_agent_id: int | None
    preferred_until: datetime | None
    team_since: datetime | None
    auto_replied_at: datetime | None
    routing: Routing
    care_kind: Literal["birthday", "birthday_task", "recovery"] | None
    messages: list[MessageView] = Field(description="the newest 200, oldest first")
    contact: ConversationContact
    sla: ConversationSla | None


class ReplyQueued(View):
    message_id: int
    status: Literal["queued"]


class NoteAdded(View):
    message_id: int


class StatusChanged(View):
    id: int
    status: SettableStatus
    assignee_id: int | None
    snoozed_until: datetime | None
    resolved_at: datetime | None


class Assigned(View):
    id: int
    team_id: int
    assignee_id: int | None
    routing: Routing


class PresenceSet(View):
    agent_id: int
    status: Presence
