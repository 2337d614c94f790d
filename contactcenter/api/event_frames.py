"""The frames GET /v1/events sends: hello, resync, and one shape per inbox event (what the
OpenAPI document shows on the socket's 101)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, RootModel

from contactcenter.api.conversation_views import EscalationDone
from contactcenter.api.openapi import View, left_out
from contactcenter.domain.enums import ConversationStatus, MessageStatus, Presence
from contactcenter.domain.sla import SlaKind

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
HEARTBEAT_SECONDS = 25.0
RESUBSCRIBE_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)
# the follower waits this long for new agent events per call (a Redis that stops answering
# is noticed after it and REDIS_CALL_TIMEOUT_SECONDS more)
STREAM_BLOCK_MS = 5000
STREAM_BATCH = 500
REPLAY_PAGE = 500

# what a socket receives when it may have missed something and must re-read
RESYNC: dict[str, Any] = {"type": "resync"}
# what a socket's queue receives when the socket must close
CLOSE: dict[str, Any] = {"type": "close"}


# an inbox event's id (a Redis stream id): what ?after= takes
EVENT_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
EventId = Annotated[str, Field(pattern=EVENT_ID_PATTERN)]


class Hello(View):
    """The first frame."""

    type: Literal["hello"]
    agent_id: int
    last_event_id: EventId | None = Field(
        description="events after this one follow (replayed first, then live); null when "
        "Redis is away and no ?after= was given"
    )


class Resync(View):
    """Events may have been missed (Redis was away, or ?after= is older than the stream
    keeps): re-read the inbox."""

    type: Literal["resync"]


class _Event(View):
    id: EventId = Field(description="give it as ?after= when reconnecting")
    team_id: int | None
    assignee_id: int | None


class _ConversationEvent(_Event):
    conversation_id: int


class MessageCreatedData(View):
    message_id: int
    direction: Literal["inbound", "outbound", "note"]
    fallback_of: int = left_out("the failed SMS this e-mail copy sends again (only then)")


class MessageCreated(_ConversationEvent):
    type: Literal["message.created"]
    data: MessageCreatedData


class MessageStatusData(View):
    message_id: int
    status: MessageStatus
    error_code: str | None = None
    error: str = left_out("the provider's words on a failed send")


class MessageStatusChanged(_ConversationEvent):
    type: Literal["message.status_changed"]
    data: MessageStatusData


class AssignedData(View):
    reason: Literal["least_loaded", "round_robin", "preferred", "transfer"]
    previous_assignee_id: int | None = Field(None, description="only on a transfer")


class ConversationAssigned(_ConversationEvent):
    type: Literal["conversation.assigned"]
    data: AssignedData


class QueuedData(View):
    priority: int
    tier: int


class ConversationQueued(_ConversationEvent):
    type: Literal["conversation.queued"]
    data: QueuedData


class StatusData(View):
    status: ConversationStatus
    previous: ConversationStatus = left_out("left out when a snooze ended on its own")


class ConversationStatusChanged(_ConversationEvent):
    type: Literal["conversation.status_changed"]
    data: StatusData


class OverflowedData(View):
    from_team_id: int


class TagsData(View):
    tags: list[str] = Field(description="the tags it has now")
    added: list[str]
    removed: list[str]


class ConversationTagsChanged(_ConversationEvent):
    type: Literal["conversation.tags_changed"]
    data: TagsData


class ConversationOverflowed(_ConversationEvent):
    type: Literal["conversation.overflowed"]
    data: OverflowedData


class RecoveryData(View):
    score: int
    score_id: int
    from_conversation_id: int


class ConversationRecovery(_ConversationEvent):
    """A low satisfaction score opened a recovery conversation."""

    type: Literal["conversation.recovery"]
    data: RecoveryData


class SlaData(View):
    event_id: int
    kind: SlaKind
    due_at: datetime
    escalation: EscalationDone


class SlaWarning(_ConversationEvent):
    type: Literal["sla.warning"]
    data: SlaData


class SlaBreached(_ConversationEvent):
    type: Literal["sla.breached"]
    data: SlaData


class PresenceData(View):
    agent_id: int
    presence: Presence


class PresenceChanged(_Event):
    """Sent to the agent's teams (conversation_id is null)."""

    type: Literal["agent.presence_changed"]
    conversation_id: None
    team_id: int
    assignee_id: None
    data: PresenceData


class EventFrame(
    RootModel[
        Annotated[
            Hello
            | Resync
            | MessageCreated
            | MessageStatusChanged
            | ConversationAssigned
            | ConversationQueued
            | ConversationStatusChanged
            | ConversationTagsChanged
            | ConversationOverflowed
            | ConversationRecovery
            | SlaWarning
            | SlaBreached
            | PresenceChanged,
            Field(discriminator="type"),
        ]
    ]
):
    """One JSON text frame of GET /v1/events."""
