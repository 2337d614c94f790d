"""E-mail threading, pure: our Message-IDs and the conversation token in a subject.

A reply joins its conversation through In-Reply-To / References matched against the
Message-IDs we stored and sent, then through the token; never by subject alone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field

# "[#123-1a2b3c4d5e6f7a8b]": the conversation id and a signature, so nobody can write a token into a
# subject and land their mail in someone else's conversation
_TOKEN = re.compile(r"\s*\[#(\d{1,19})-([0-9a-f]{16})\]")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|fw|fwd|回复|答复)\s*[:：]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class AttachmentData:
    filename: str | None
    content_type: str
    size: int
    content: bytes | None  # None when it was over the size limit
    content_id: str | None = None
    inline: bool = False
    url: str | None = None  # where the provider keeps it (MMS media)


@dataclass(frozen=True)
class EmailDetails:
    """What the e-mail channel adds to an inbound message."""

    message_id: str
    # the Message-IDs this mail answers: In-Reply-To first, then References newest first
    answers: tuple[str, ...] = ()
    from_address: str | None = None
    reply_to: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    html: str | None = None  # sanitised
    full_text: str | None = None  # when the message text has quoted replies folded away
    attachments: tuple[AttachmentData, ...] = ()
    automatic: bool = False  # an auto-reply, a list or bulk mail, a bounce
    # a bounce: the Message-ID of our mail that could not be delivered, and why
    bounced_message_id: str | None = None
    bounce_reason: str | None = None
    mailbox_id: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


def _signature(secret_key: str, conversation_id: int) -> str:
    mac = hmac.new(secret_key.encode(), f"conversation:{conversation_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]  # 64 bits: not worth guessing


def conversation_token(secret_key: str, conversation_id: int) -> str:
    return f"[#{conversation_id}-{_signature(secret_key, conversation_id)}]"


def conversation_from_subject(secret_key: str, subject: str) -> int | None:
    """The conversation the subject's (last) token names, if the token is ours: one guess per
    mail, however long the subject."""
    matches = _TOKEN.findall(subject)
    if not matches:
        return None
    number, signature = matches[-1]
    conversation_id = int(number)
    if hmac.compare_digest(signature, _signature(secret_key, conversation_id)):
        return conversation_id
    return None


def reply_subject(subject: str | None, token: str) -> str:
    """'Re: <the customer's subject> [#token]', without piling up Re: or tokens."""
    base = _TOKEN.sub("", subject or "").strip()
    while _REPLY_PREFIX.match(base):
        base = _REPLY_PREFIX.sub("", base, count=1)
    return f"Re: {base} {token}" if base else f"Re: {token}"


def opening_subject(subject: str | None, token: str) -> str:
    """The subject of a mail that starts a thread (a greeting): no Re:, our token kept."""
    base = _TOKEN.sub("", subject or "").strip()
    return f"{base} {token}" if base else token


def new_message_id(from_address: str) -> str:
    domain = from_address.rpartition("@")[2] or "contactcenter.invalid"
    return f"<cc.{uuid.uuid4().hex}@{domain}>"


def synthetic_message_id(raw: bytes) -> str:
    """For a mail that has no Message-ID: the same bytes give the same id, so it dedupes."""
    return f"<sha256.{hashlib.sha256(raw).hexdigest()}@contactcenter.invalid>"
