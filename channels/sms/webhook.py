"""Twilio's webhooks: inbound SMS/MMS and delivery status callbacks.

Every request must carry a valid X-Twilio-Signature, checked with the twilio package's
RequestValidator against the URL Twilio called. Behind a proxy or TLS terminator that URL is
PUBLIC_BASE_URL + the path: set PUBLIC_BASE_URL to what Twilio is configured with. A missing
or wrong signature gets 403 and writes nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from xml.sax.saxutils import escape

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from twilio.request_validator import RequestValidator

from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Media, documented
from contactcenter.api.parsing import MAX_ID, Body, whole_number
from contactcenter.domain.email import AttachmentData
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.errors import Invalid
from contactcenter.domain.identities import normalise_phone
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.domain.sms import Keyword, keyword
from contactcenter.domain.sms_numbers import SmsNumber
from contactcenter.services import satisfaction, sms_status
from contactcenter.services import sms as sms_service
from contactcenter.services.ingest import ingest

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA = 10  # Twilio sends at most 10 media per MMS


# --- what Twilio posts (documentation only: the handlers read the form by hand) -------------

# Twilio sends more fields than these (NumSegments, ApiVersion, FromCity ...): they
# are signed with the rest and otherwise ignored, so the forms allow any other field
_SID_PATTERN = r"^[A-Z]{2}[0-9a-fA-F]{32}$"
_ACCOUNT_PATTERN = r"^AC[0-9a-fA-F]{32}$"
# a field Twilio may leave out: not required, and never null in a form
LeftOut = SkipJsonSchema[None]


def _form_schema(schema: dict[str, Any]) -> None:
    """A form field left out has no value: drop the null default pydantic writes for it."""
    for field_schema in schema.get("properties", {}).values():
        if "default" in field_schema and field_schema["default"] is None:
            del field_schema["default"]


class TwilioForm(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_form_schema)

    account_sid: str = Field(
        alias="AccountSid",
        pattern=_ACCOUNT_PATTERN,
        description="the account whose auth token signed the request",
    )


def _inbound_schema(schema: dict[str, Any]) -> None:
    _form_schema(schema)
    schema["patternProperties"] = {
        "^MediaUrl[0-9]$": {
            "type": "string",
            "description": "an MMS attachment (https only; others are dropped)",
        },
        "^MediaContentType[0-9]$": {
            "type": "string",
            "description": "the media type of MediaUrl<N>",
        },
    }


class InboundSmsForm(TwilioForm):
    """The fields of Twilio's incoming-message webhook that we read."""

    model_config = ConfigDict(json_schema_extra=_inbound_schema)

    message_sid: Annotated[str, Field(pattern=_SID_PATTERN)] | LeftOut = Field(
        None, alias="MessageSid", description="required unless SmsMessageSid is sent"
    )
    sms_message_sid: Annotated[str, Field(pattern=_SID_PATTERN)] | LeftOut = Field(
        None, alias="SmsMessageSid", description="the older name of MessageSid"
    )
    sender: str = Field(
        alias="From",
        description="the customer's number (a short code or sender name is kept as sent)",
    )
    to: str | LeftOut = Field(None, alias="To", description="our number it was sent to")
    messaging_service_sid: str | LeftOut = Field(
        None,
        alias="MessagingServiceSid",
        description="our messaging service it was sent to (when the number is in one)",
    )
    body: str = Field("", alias="Body", description="the text (NUL characters are dropped)")
    num_media: int = Field(
        0,
        ge=0,
        alias="NumMedia",
        description=f"how many MediaUrl<N> there are (at most {MAX_MEDIA} are read)",
    )


class StatusCallbackForm(TwilioForm):
    """The fields of Twilio's message status callback that we read."""

    message_sid: Annotated[str, Field(pattern=_SID_PATTERN)] | LeftOut = Field(
        None, alias="MessageSid", description="required unless SmsSid is sent"
    )
    sms_sid: Annotated[str, Field(pattern=_SID_PATTERN)] | LeftOut = Field(
        None, alias="SmsSid", description="the older name of MessageSid"
    )
    message_status: str | LeftOut = Field(
        None,
        alias="MessageStatus",
        description="required unless SmsStatus is sent: accepted, scheduled, queued, sending, "
        "sent, delivered, read, undelivered, failed or canceled (others are ignored)",
    )
    sms_status: str | LeftOut = Field(
        None, alias="SmsStatus", description="the older name of MessageStatus"
    )
    error_code: str | LeftOut = Field(
        None, alias="ErrorCode", description="Twilio's error code of a failed message"
    )


class StatusCallbackQuery(Body):
    """Documentation only: status_callback reads ?m= by hand."""

    m: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="our message id, put in the callback URL when the message was sent "
        "(a value that is not one is ignored)",
    )


FORM = "application/x-www-form-urlencoded"
TWIML = Media(
    "text/xml",
    {"type": "string"},
    "TwiML: an empty <Response/>, or a <Message> with SMS_HELP_REPLY when the text is HELP",
)


def _twiml(reply: str | None = None) -> web.Response:
    if reply is None:
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")
    body = f"<Response><Message>{escape(reply)}</Message></Response>"
    return web.Response(
        text='<?xml version="1.0" encoding="UTF-8"?>' + body, content_type="text/xml"
    )


def _public_url(request: web.Request) -> str:
    base = request.app[CONNS].settings.public_base_url
    if base:
        return base.rstrip("/") + request.path_qs
    return str(request.url)


async def _signed_form(request: web.Request) -> tuple[dict[str, str], SmsNumber | None]:
    """The form, and the number it is for, if Twilio signed it with that number's token."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type", "Twilio posts urlencoded forms")
    try:
        posted = await request.post()
    except (ValueError, LookupError):
        raise ApiError(400, "invalid_webhook", "the form could not be read") from None
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    conns = request.app[CONNS]
    account = form.get("AccountSid", "")
    if not _ACCOUNT.match(account) or not all(
        _printable(form.get(field, "")) == form.get(field, "").strip()
        for field in ("To", "MessagingServiceSid")
    ):
        return form, None
    if request.path.endswith("/sms"):
        number = await sms_service.for_inbound(
            conns, account, form.get("To"), form.get("MessagingServiceSid")
        )
    else:
        number = await sms_service.for_account(conns, account)
    signature = request.headers.get("X-Twilio-Signature", "")
    if number is None or not signature:
        return form, None
    try:
        valid = RequestValidator(number.auth_token).validate(_public_url(request), form, signature)
    except ValueError:  # a Host header no URL can be made of (no PUBLIC_BASE_URL): not signed
        valid = False
    if not valid:
        return form, None
    return form, number


def _refused() -> ApiError:
    # the same answer for a wrong signature, a missing one and an unknown account
    return ApiError(403, "invalid_signature", "the request is not signed by Twilio")


# Twilio's ids: two letters and 32 hex digits (AC... accounts, SM.../MM... messages)
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}\Z")
_ACCOUNT = re.compile(r"^AC[0-9a-fA-F]{32}\Z")
_MAX_URL = 2000


def _printable(value: str, limit: int = 64) -> str:
    """What PostgreSQL can store and a person can read: no NUL or control characters."""
    return "".join(c for c in value if c.isprintable()).strip()[:limit]


def _sender_phone(raw: str) -> str:
    try:
        return normalise_phone(raw)
    except Invalid:
        return raw.strip()  # a short code or an alphanumeric sender: kept as it came


def _media(form: dict[str, str]) -> tuple[AttachmentData, ...]:
    count = form.get("NumMedia", "0")
    found = int(count) if count.isascii() and count.isdigit() and len(count) <= 2 else 0
    media = []
    for i in range(min(found, MAX_MEDIA)):
        url = _printable(form.get(f"MediaUrl{i}", ""), _MAX_URL)
        if url.startswith("https://"):
            kind = _printable(form.get(f"MediaContentType{i}", ""))
            media.append(
                AttachmentData(
                    filename=None,
                    content_type=kind or "application/octet-stream",
                    size=0,
                    content=None,
                    url=url,
                )
            )
    return tuple(media)


@documented(
    "Twilio: an incoming SMS or MMS",
    access="twilio",
    body=Media(FORM, InboundSmsForm),
    responses={200: TWIML},
)
async def inbound_sms(request: web.Request) -> web.Response:
    """Store an incoming text as a customer message: opt-out and opt-in keywords (STOP,
    START ...) record consent, HELP gets the help reply, a digit answering a follow-up is taken
    as its score. 403 when the request is not signed with the auth token of the number it was
    sent to."""
    form, number = await _signed_form(request)
    if number is None:
        raise _refused()
    message_sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    sender = _printable(form.get("From", ""))
    if not _SID.match(message_sid) or not sender:
        raise ApiError(400, "invalid_webhook", "a MessageSid and a From are required")
    conns = request.app[CONNS]
    phone = _sender_phone(sender)
    body = form.get("Body", "").replace("\x00", "")
    word = keyword(body)
    if word is Keyword.OPT_IN and not await sms_service.is_opted_out(conns.db, phone):
        word = None  # "Yes" from a customer who never opted out is just a yes
    also = None
    if word in (Keyword.OPT_OUT, Keyword.OPT_IN):
        also = sms_service.record_keyword(
            phone, opted_out=word is Keyword.OPT_OUT, word=body.strip(), now=conns.clock()
        )
    inbound = InboundMessage(
        channel=Channel.SMS,
        external_id=message_sid,
        text=body,
        identities=(Identity(IdentityKind.PHONE, phone),),
        # consent keywords are not work for agents; a HELP is someone asking for it
        automatic=word in (Keyword.OPT_OUT, Keyword.OPT_IN),
        attachments=_media(form),
        sms_number_id=number.id,
    )
    # a digit answering the customer's follow-up visit is a score, not new work
    if word is None and await satisfaction.take_sms_answer(conns, inbound, phone):
        return _twiml()
    await ingest(conns, inbound, also=also)
    # Twilio waits for this answer: it comes right after the commit
    if word is Keyword.HELP:
        return _twiml(conns.settings.sms_help_reply)
    return _twiml()


@documented(
    "Twilio: a message's delivery status",
    access="twilio",
    body=Media(FORM, StatusCallbackForm),
    query=StatusCallbackQuery,
    responses={204: None},
)
async def status_callback(request: web.Request) -> web.Response:
    """Move one of our outgoing SMS forward to the status Twilio reports (a late or repeated
    report changes nothing; a final failure may fall back to e-mail)."""
    form, number = await _signed_form(request)
    if number is None:
        raise _refused()
    message_sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not _SID.match(message_sid) or not status:
        raise ApiError(400, "invalid_webhook", "a MessageSid and a MessageStatus are required")
    ours = whole_number(request.query.get("m", ""), low=1)
    await sms_status.apply(
        request.app[CONNS],
        message_sid,
        status,
        form.get("ErrorCode"),
        message_id=ours,
        account_sid=number.account_sid,
    )
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks/twilio/sms", inbound_sms)
    app.router.add_post("/v1/webhooks/twilio/status", status_callback)
