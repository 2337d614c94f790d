"""SMS out through the twilio package's async client, at TWILIO_API_BASE.

twilio 9 has no base-URL setting, so a thin http client rewrites api.twilio.com to the
configured base (tests point it at a Twilio-compatible server on loopback). Its retries stay
off: twilio's client would retry a POST on any 5xx and could send an SMS twice; our send job
retries instead, with backoff, and counts attempts in PostgreSQL.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from contactcenter.conns import Conns
from contactcenter.domain.errors import Invalid
from contactcenter.domain.messages import DeliveryFailed, OutboundMessage, SendReceipt
from contactcenter.services import sms as sms_service
from contactcenter.services import sms_outbound

logger = logging.getLogger(__name__)

TWILIO_TIMEOUT_SECONDS = 30
# Twilio's own code for "the recipient opted out with the carrier"
UNSUBSCRIBED = 21610


class RebasingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """twilio's async http client, sending to `base` what it would send to https://twilio.com or
    https://*.twilio.com (path and query kept; a path in `base` goes in front).

    Also: its timeout is applied to every call that brings none (twilio's stores it and never
    uses it), and the credentials go as an Authorization header (aiohttp 3.14 deprecates the
    BasicAuth twilio passes). Build it inside a coroutine; `await close()` it."""

    def __init__(self, base: str, *, timeout: float = TWILIO_TIMEOUT_SECONDS) -> None:
        parsed = urlsplit(base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"not an http(s) base URL: {base!r}")  # before a session opens
        super().__init__(timeout=timeout)  # max_retries unset: no retries
        self.base = base.rstrip("/")

    def rebase(self, url: str) -> str:
        """`url` with a Twilio host replaced by the base; any other URL unchanged."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not (host == "twilio.com" or host.endswith(".twilio.com")):
            return url
        base = urlsplit(self.base)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (twilio's signature)
        allow_redirects: bool = False,
    ) -> Response:
        sent_headers = dict(headers or {})
        if auth is not None:
            login, password = auth
            token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
            sent_headers["Authorization"] = f"Basic {token}"
        response: Response = await super().request(
            method,
            self.rebase(url),
            params=params,
            data=data,
            headers=sent_headers,
            auth=None,
            timeout=self.timeout if timeout is None else timeout,
            allow_redirects=allow_redirects,
        )
        return response


class SmsSender:
    def __init__(self, conns: Conns) -> None:
        self._conns = conns

    async def send(self, message: OutboundMessage) -> SendReceipt:
        settings = self._conns.settings
        try:
            envelope = await sms_outbound.envelope(
                self._conns, message.conversation_id, message.text
            )
        except Invalid as refused:
            raise DeliveryFailed(refused.code, refused.message, permanent=True) from refused
        number = envelope.number
        http = RebasingHttpClient(settings.twilio_api_base)
        client = Client(number.account_sid, number.auth_token, http_client=http)
        options: dict[str, Any] = {"to": envelope.to, "body": message.text}
        if number.messaging_service_sid:
            options["messaging_service_sid"] = number.messaging_service_sid
        else:
            options["from_"] = number.from_number
        if settings.public_base_url:
            # our id rides along (signed with the rest): a report that outruns the commit of
            # the send still finds its message
            options["status_callback"] = (
                settings.public_base_url.rstrip("/")
                + f"/v1/webhooks/twilio/status?m={message.message_id}"
            )
        try:
            sent = await client.messages.create_async(**options)
        except TwilioRestException as error:
            await self._refused(error, envelope.to)
            raise _failure(error) from error
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise DeliveryFailed(
                "twilio_unavailable", str(error) or type(error).__name__, permanent=False
            ) from error
        finally:
            await http.close()
        # Twilio says "0" while a Messaging Service has yet to pick the sender: ours then
        reported = int(sent.num_segments or 0)
        segments = reported if reported > 0 else envelope.segments
        return SendReceipt(external_id=sent.sid, segments=segments)

    async def _refused(self, error: TwilioRestException, phone: str) -> None:
        if error.code == UNSUBSCRIBED:
            await sms_service.record_carrier_opt_out(self._conns, phone, f"twilio {error.code}")


def _failure(error: TwilioRestException) -> DeliveryFailed:
    """429 and 5xx pass; any other refusal is final, with Twilio's code kept."""
    passing = error.status == 429 or error.status >= 500
    code = f"twilio_{error.code}" if error.code else f"twilio_http_{error.status}"
    return DeliveryFailed(code, error.msg or str(error), permanent=not passing)
