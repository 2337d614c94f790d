"""POST /v1/webhooks/email/raw: one raw RFC 822 mail, for an MTA that pipes mail to us.

Behind a shared secret (EMAIL_WEBHOOK_SECRET, sent as X-Webhook-Secret). A 2xx means the mail
is stored (or quarantined, when it cannot be read): the MTA may delete its copy.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import RootModel

from channels.email.intake import take
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Media, View, documented


class MailStored(View):
    message_id: int
    conversation_id: int
    # the mail was stored before (the same Message-ID): nothing new was written
    duplicate: bool


class MailQuarantined(View):
    """The mail could not be read: it is kept in quarantine for an admin, not lost."""

    quarantine_id: int


class MailTaken(RootModel[MailStored | MailQuarantined]):
    """What became of the mail: stored as a message, or quarantined."""


RAW_MAIL = Media(
    "message/rfc822",
    {"type": "string"},
    "One whole mail, headers and body, as the MTA received it (read as bytes, whatever the "
    "Content-Type; at most MAX_ATTACHMENT_BYTES + 5 MiB, else 413).",
)


def _check_secret(request: web.Request) -> None:
    expected = request.app[CONNS].settings.email_webhook_secret
    if not expected:
        raise ApiError(404, "not_found", "the raw-mail webhook is not enabled")
    offered = request.headers.get("X-Webhook-Secret", "")
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise ApiError(403, "invalid_webhook_secret", "the webhook secret is wrong")


async def _read_mail(request: web.Request) -> bytes:
    """The body, up to the mail size limit (larger than the API's general body limit)."""
    limit = request.app[CONNS].settings.max_mail_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"a mail may be {limit} bytes at most")
    raw = await request.content.read(limit + 1)
    while len(raw) <= limit:
        more = await request.content.read(limit + 1 - len(raw))
        if not more:
            break
        raw += more
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"a mail may be {limit} bytes at most")
    if not raw.strip():
        raise ApiError(400, "empty_mail", "the body must be one raw RFC 822 mail")
    return raw


@documented(
    "Take one raw mail from an MTA",
    access="email_webhook",
    body=RAW_MAIL,
    responses={202: MailTaken},
)
async def receive_raw_mail(request: web.Request) -> web.Response:
    """Store one raw RFC 822 mail as a customer message (threaded like one the mail listener
    reads). Any 2xx means the MTA may delete its copy; 404 while EMAIL_WEBHOOK_SECRET is
    unset."""
    _check_secret(request)
    raw = await _read_mail(request)
    taken = await take(request.app[CONNS], None, raw)
    if taken.result is None:
        return web.json_response({"quarantine_id": taken.quarantine_id}, status=202)
    return web.json_response(
        {
            "message_id": taken.result.message_id,
            "conversation_id": taken.result.conversation_id,
            "duplicate": taken.result.duplicate,
        },
        status=202,
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks/email/raw", receive_raw_mail)
