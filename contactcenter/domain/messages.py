"""What a channel adapter hands to ingest, and what a sender is given to deliver."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from contactcenter.domain.email import AttachmentData, EmailDetails
from contactcenter.domain.enums import Channel, IdentityKind


@dataclass(frozen=True)
class Identity:
    kind: IdentityKind
    value: str  # already normalised (see domain.identities)


@dataclass(frozen=True)
class InboundMessage:
    channel: Channel
    external_id: str
    text: str
    # the ways the channel has proven this sender can be reached, strongest first: the first
    # one known decides the contact, the others are attached to it when nobody else has them
    identities: tuple[Identity, ...]
    contact_name: str | None = None
    # contact details the sender typed but nothing proved (a web visitor's e-mail): kept on a
    # new contact's profile for the agent to see, never used to find or link a contact
    claimed: dict[str, str] = field(default_factory=dict)
    # a conversation the channel already knows the message belongs to (a web visitor's
    # token, an e-mail thread); None opens a new conversation
    conversation_id: int | None = None
    subject: str | None = None
    # a retry that says something else is a client's bug (web); for mail it is just a copy
    retry_must_match: bool = False
    # sent by a machine or a keyword (auto-reply, STOP): stored, opening no work
    automatic: bool = False
    attachments: tuple[AttachmentData, ...] = ()
    email: EmailDetails | None = None
    sms_number_id: int | None = None


@dataclass(frozen=True)
class OutboundMessage:
    message_id: int
    conversation_id: int
    contact_id: int
    channel: Channel
    text: str
    author_name: str | None
    created_at: datetime
    # sent by a rule or by care, not a person: e-mail marks it Auto-Submitted
    automatic: bool = False
    # a template's own HTML (e-mail); None: made from the text
    html: str | None = None


class DeliveryFailed(Exception):
    """A sender could not deliver; ``permanent`` says whether trying again can help."""

    def __init__(self, code: str, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class SendReceipt:
    """What a provider said when it took a message: its id for the message, and its cost."""

    external_id: str | None = None
    segments: int | None = None


class Sender(Protocol):
    """Delivers one outbound message on one channel; raises DeliveryFailed when it cannot."""

    async def send(self, message: OutboundMessage) -> SendReceipt | None: ...
