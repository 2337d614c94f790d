"""What an SMS reply needs before it may go: a number to send from, the customer's number,
their consent, and a length within the configured number of segments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contactcenter.conns import Conns
from contactcenter.domain.errors import Invalid
from contactcenter.domain.sms import segments
from contactcenter.domain.sms_numbers import SmsNumber
from contactcenter.services import sms as sms_service
from contactcenter.store import contacts, conversations, sms


@dataclass(frozen=True)
class SmsEnvelope:
    number: SmsNumber
    to: str
    segments: int


async def check_reply(conn: Any, conversation: Any, text: str, max_segments: int) -> str:
    """Refuse, at once and clearly, an SMS reply that could never be sent; else the number
    it goes to."""
    phone = await contacts.phone_number(conn, conversation["contact_id"])
    if phone is None:
        raise Invalid("the customer has no phone number", code="no_recipient")
    if await sms.opted_out(conn, phone):
        raise Invalid(
            "the customer opted out of SMS (they texted STOP): no SMS can be sent to them",
            code="recipient_opted_out",
        )
    cost = segments(text)
    if cost > max_segments:
        raise Invalid(
            f"the text would take {cost} SMS segments; at most {max_segments}",
            code="too_many_segments",
            details={"segments": cost, "max": max_segments},
        )
    return phone


async def envelope(conns: Conns, conversation_id: int, text: str) -> SmsEnvelope:
    """Raises Invalid (for the sender: a permanent failure) when it may not go."""
    conversation = await conversations.get(conns.db, conversation_id)
    assert conversation is not None
    phone = await check_reply(conns.db, conversation, text, conns.settings.sms_max_segments)
    number = await sms_service.for_conversation(conns, conversation["sms_number_id"])
    if number is None:
        raise Invalid("no SMS number is configured", code="no_sms_number")
    return SmsEnvelope(number=number, to=phone, segments=segments(text))
