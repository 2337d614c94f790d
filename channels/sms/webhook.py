"""Twilio's webhooks: inbound SMS/MMS and delivery status callbacks.

Every request must carry a valid X-Twilio-Signature, checked with the twilio package's
RequestValidator against the URL Twilio called. Behind a proxy or TLS terminator that URL is
PUBLIC_BASE_URL + the path: set PUBLIC_BASE_URL to what Twilio is configured with. A missing
or wrong signature gets 403 and writes nothing.
"""

from __future__ import annotations

import logging
import re
from xml.sax.saxutils import escape

from aiohttp import web
from twilio.request_validator import RequestValidator

from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import whole_number
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
    if not RequestValidator(number.auth_token).validate(_public_url(request), form, signature):
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


async def inbound_sms(request: web.Request) -> web.Response:
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


async def status_callback(request: web.Request) -> web.Response:
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
