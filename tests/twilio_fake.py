"""A Twilio-compatible REST server on loopback for the SMS channel's tests, and Twilio's webhooks.

Twilio's cloud is out of reach in tests, so `TwilioFake` (aiohttp, on 127.0.0.1 and a free port,
run on the test's own event loop like tests/mailservers.py's SmtpServer) answers the part of
Twilio's REST API the product uses, in Twilio's own JSON shapes, to the REAL twilio client
(twilio 9.13, read from its source: twilio/rest/api/v2010/account/message/__init__.py,
twilio/base/version.py, twilio/http/async_http_client.py):

- POST /2010-04-01/Accounts/{AccountSid}/Messages.json (To, From or MessagingServiceSid, Body,
  StatusCallback, MediaUrl (repeated), ...): HTTP Basic auth with the account SID and auth
  token, else 401 with Twilio's body {"code": 20003, "detail", "message": "Authenticate",
  "more_info", "status": 401}. Answers 201 with a Message resource: sid "SM" + 32 hex, status
  "queued" (with a MessagingServiceSid and no From: "accepted", from null and num_segments
  "0", as Twilio does before it picks a sender), num_segments and num_media as STRINGS (Twilio
  sends them so; MessageInstance.num_segments is "2", not 2), RFC 2822 dates, error_code null.
  Missing To / From / Body answer 21604 / 21603 / 21602, a body over 1600 characters 21617.
- GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json: the stored resource (its status
  follows `TwilioFake.send_status`), for a reconciler that asks Twilio.
- anything else: 404 with code 20404.

Scripted answers for the next sends (after the auth check, before validation): `fail_next`
(429 / 500 / 503, Twilio's error body or any raw body, e.g. a proxy's HTML page),
`reject_next` (21610 unsubscribed, 21211 invalid To, ...), `stall_next` (Twilio creates the
message but holds its answer back until `release()` or `stop()`: a client timeout on a message
that WAS sent). Every request is recorded in `requests` (method, path, form fields in order,
Basic-auth user, time, answer); `sends` are the POSTs to Messages.json, `messages` the created
resources; `wait_for(count, within=...)` waits on an asyncio.Condition for created messages.

Webhooks the other way (Twilio -> our app): `send_status` posts a status callback and
`inbound_sms_form` builds an inbound SMS/MMS webhook form, both signed with the twilio
package's own RequestValidator (`sign`); `post_signed` posts a signed form. The signature is
over the PUBLIC url Twilio called (scheme, host, path AND query string, then the form's keys
sorted with their values): `post_to` sends the request to another address (the app's test
socket) while signing the public URL, as behind a proxy or TLS terminator.

Pointing the real twilio client at the fake. twilio 9 has no base-URL setting: every domain has
its host baked in (ApiBase: Domain(twilio, "https://api.twilio.com")), and Client only edits
the host for TWILIO_EDGE / TWILIO_REGION (api.<edge>.<region>.twilio.com). What does work is
the `http_client` argument: the product's `channels.sms.sender.RebasingHttpClient(fake.url)`
subclasses twilio.http.async_http_client.AsyncTwilioHttpClient and rewrites
https://twilio.com and https://<anything>.twilio.com in `request()` to `base` (path and query
kept), so

    http = RebasingHttpClient(base=fake.url)        # inside a coroutine: see below
    client = twilio.rest.Client(account_sid, auth_token, http_client=http)
    try:
        message = await client.messages.create_async(to=..., from_=..., body=...)
    finally:
        await http.close()

Pitfalls of twilio 9.13's async client, found in its source and proven by
tests/test_twilio_fake.py:

- Retries: AsyncTwilioHttpClient(max_retries=n) wraps its session in aiohttp_retry's RetryClient
  with ExponentialRetry, whose defaults retry EVERY method, POST included, on every 5xx: an SMS
  could go out twice. Leave max_retries unset (RebasingHttpClient does not even take it); with
  it unset a 503 is one request and one TwilioRestException.
- Errors: any status outside 2xx raises twilio.base.exceptions.TwilioRestException with
  .status (HTTP), .code (Twilio's code from the JSON body; the HTTP status itself when the body
  is not JSON, e.g. a 502 page from a proxy) and .msg ("Unable to create record: <message>").
  A body with type/title/status/code (RFC 9457) raises TwilioServiceException instead (not a
  subclass of TwilioRestException); Twilio's Messages API does not answer so today.
  Network failures and timeouts are NOT wrapped: aiohttp.ClientError / TimeoutError escape.
- Timeouts: AsyncTwilioHttpClient(timeout=...) stores the value and never uses it: request()
  passes only the per-call timeout, which the generated resources never set, so aiohttp gets
  ClientTimeout(total=None): no timeout at all, not even aiohttp's default 300 s.
  RebasingHttpClient applies its own timeout (10 s by default) when the call has none.
- Session: AsyncTwilioHttpClient opens an aiohttp ClientSession in __init__, so it must be built
  inside a coroutine (aiohttp 3.14 raises "no running event loop" otherwise) and closed with
  `await http.close()` (twilio.rest.Client has no close of its own); an unclosed session is a
  ResourceWarning, an error under filterwarnings=error. `async with RebasingHttpClient(...)`
  works too.
- Form encoding: the client posts application/x-www-form-urlencoded; arguments left unset or
  None are dropped, booleans go as "true"/"false", media_url=[a, b] as repeated MediaUrl fields,
  and a StatusCallback URL with its own query string (?m=42&x=a b) arrives intact, percent-
  encoded on the wire and decoded by the server: the status callback is then POSTed to that
  exact URL, and the signature covers its query string too.
- Client(account_sid, auth_token) also reads TWILIO_EDGE / TWILIO_REGION from os.environ
  (an `environment={}` argument is falsy and falls back to os.environ): they change the host to
  api.<edge>.<region>.twilio.com, which RebasingHttpClient rewrites like api.twilio.com.
- Auth: AsyncTwilioHttpClient.request wraps the credentials in aiohttp.BasicAuth, which
  aiohttp 3.14 deprecates: every send emits a DeprecationWarning, which filterwarnings=error
  turns into a failed send (raised from inside create_async). RebasingHttpClient sends the
  Authorization header itself and passes auth=None. (The header is not logged: twilio's
  log_request skips headers named like "authorization".)
- AsyncTwilioHttpClient(proxy_url=...) is stored and never used either.

Fixtures (function scope): `twilio_fake` -> a started TwilioFake (account_sid "AC" + 32 hex,
auth_token, url); `twilio_client` -> a twilio.rest.Client on a RebasingHttpClient pointed at
it, its session closed after the test. Import them where used and mark the parameters that
request them `# noqa: F811`, or once in conftest.py:

    from tests.twilio_fake import twilio_client, twilio_fake  # noqa: F401
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import aiohttp
import phonenumbers
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.sms.sender import RebasingHttpClient

LOCALHOST = "127.0.0.1"
API_VERSION = "2010-04-01"
MAX_BODY = 1600  # Twilio's limit for Body, in characters (21617 above it)

# Twilio's error texts for the codes tests script (https://www.twilio.com/docs/errors/<code>)
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To'"
    " number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
# the Twilio code that goes with a transient HTTP status
_TRANSIENT_CODES = {429: 20429, 500: 20500, 503: 20503}

# ------------------------------------------------------------------------------------ segments

# GSM 03.38: the basic set (one septet each; ESC itself excluded) and the extension table
# (ESC + one septet: two each). Anything else makes the whole message UCS-2.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def sms_segments(body: str) -> int:
    """How many SMS parts Twilio bills for `body`: GSM-7 160 septets in one part, 153 per part
    when split (an escape pair never split); UCS-2 70 UTF-16 units, 67 per part (a surrogate
    pair, e.g. an emoji, never split). An empty body (media only) is one part. Computed here
    independently of the product, as the fake's own oracle."""
    if not body:
        return 1
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        units = [2 if c in GSM7_EXTENSION else 1 for c in body]
        single, part = 160, 153
    else:
        units = [len(c.encode("utf-16-le")) // 2 for c in body]
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for unit in units:
        if used + unit > part:
            parts, used = parts + 1, 0
        used += unit
    return parts


# ------------------------------------------------------------------------------------- records


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 lowercase hex digits ("SM...", "AC...", "MG...")."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: "Thu, 24 Aug 2023 05:01:45 +0000"."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def twilio_error(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    """Twilio's error body, as its REST API answers a 4xx/5xx."""
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass(frozen=True)
class TwilioRequest:
    """One request the fake received and what it answered (answer is None while stalled)."""

    method: str
    path: str
    fields: tuple[tuple[str, str], ...]  # the form, in order, repeated keys kept
    auth_user: str | None  # the Basic-auth user (an account SID), None without one
    received_at: datetime
    status: int
    answer: dict[str, Any] | None

    @property
    def form(self) -> dict[str, str]:
        """The form fields, the first value of each (see getall for repeated ones)."""
        form: dict[str, str] = {}
        for name, value in self.fields:
            form.setdefault(name, value)
        return form

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def media_urls(self) -> list[str]:
        return self.getall("MediaUrl")

    @property
    def sid(self) -> str | None:
        """The created message's SID (a 201 answer), else None."""
        return self.answer.get("sid") if self.status == 201 and self.answer else None


@dataclass
class _Fault:
    kind: Literal["error", "stall"]
    status: int = 0
    code: int = 0
    message: str | None = None
    body: str | None = None  # a raw body instead of Twilio's JSON
    content_type: str = "application/json"


@dataclass(frozen=True)
class WebhookAnswer:
    """What our app answered to a webhook the fake sent."""

    status: int
    text: str
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- the fake


class TwilioFake:
    """Twilio's Messages API on 127.0.0.1, on the test's event loop."""

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        host: str = LOCALHOST,
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.host = host
        self.port = port
        self.requests: list[TwilioRequest] = []
        self.resources: dict[str, dict[str, Any]] = {}  # sid -> message resource
        self._faults: deque[_Fault] = deque()
        self._changed = asyncio.Condition()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> TwilioFake:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(f"{base}/Messages.json", self._create_message)
        app.router.add_get(f"{base}/Messages/{{sid}}.json", self._fetch_message)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._released.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the bound port, when port=0

    async def stop(self) -> None:
        self._released.set()  # stalled answers go out (to clients long gone)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # scripting

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        code: int | None = None,
        message: str | None = None,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next `n` sends with a transient error (429, 500, 503...): Twilio's error
        body with `code` (20429/20500/20503 by default), or `body` verbatim (e.g. an HTML page
        from a proxy, with content_type="text/html"). Nothing is created."""
        code = code if code is not None else _TRANSIENT_CODES.get(status, status)
        fault = _Fault("error", status, code, message, body, content_type)
        self._faults.extend(_Fault(**vars(fault)) for _ in range(n))

    def reject_next(
        self, n: int = 1, *, code: int = 21610, status: int = 400, message: str | None = None
    ) -> None:
        """Refuse the next `n` sends for good: 21610 "Attempt to send to unsubscribed
        recipient", 21211 "Invalid 'To' Phone Number", ... (ERROR_MESSAGES has the texts)."""
        self._faults.extend(_Fault("error", status, code, message) for _ in range(n))

    def stall_next(self, n: int = 1) -> None:
        """Create the next `n` messages (recorded, status 201) but hold the answers back until
        release() or stop(): the client times out on a message Twilio did send."""
        self._faults.extend(_Fault("stall") for _ in range(n))

    def release(self) -> None:
        """Let stalled answers go out."""
        self._released.set()

    # what was received

    @property
    def sends(self) -> list[TwilioRequest]:
        """Every POST to Messages.json, whatever it was answered."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")
        ]

    @property
    def messages(self) -> list[TwilioRequest]:
        """The sends that created a message (201), in order."""
        return [r for r in self.sends if r.sid is not None]

    def message(self, sid: str) -> dict[str, Any]:
        """The stored message resource (as GET would answer it)."""
        return self.resources[sid]

    async def wait_for(self, count: int = 1, *, within: float = 5.0) -> list[TwilioRequest]:
        """Wait until at least `count` messages were created; returns those sends."""
        return await self._wait(lambda: self.messages, count, within, "messages created")

    async def wait_for_sends(self, count: int = 1, *, within: float = 5.0) -> list[TwilioRequest]:
        """Wait until at least `count` sends arrived, whatever they were answered."""
        return await self._wait(lambda: self.sends, count, within, "sends received")

    async def _wait(
        self, found: Callable[[], list[TwilioRequest]], count: int, within: float, what: str
    ) -> list[TwilioRequest]:
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: len(found()) >= count)
        except TimeoutError:
            answers = [(r.method, r.path, r.status) for r in self.requests]
            raise AssertionError(
                f"{len(found())} of {count} {what} within {within}s (requests: {answers!r})"
            ) from None
        return list(found())

    # status callbacks (Twilio -> our app)

    async def send_status(
        self,
        url: str,
        message_sid: str,
        status: str,
        *,
        error_code: int | None = None,
        post_to: str | None = None,
        signature: str | None = None,
    ) -> WebhookAnswer:
        """Move a message created here to `status` (its GET follows) and POST the status
        callback Twilio would, signed with this account's token, to `url` (or `post_to`)."""
        resource = self.resources[message_sid]
        now = rfc2822(datetime.now(UTC))
        resource.update(status=status, date_updated=now, error_code=error_code)
        if error_code is not None:
            resource["error_message"] = ERROR_MESSAGES.get(error_code)
        if status in ("sent", "delivered", "undelivered") and resource["date_sent"] is None:
            resource["date_sent"] = now
        return await send_status(
            url,
            message_sid,
            status,
            error_code=error_code,
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            from_=resource["from"],
            to=resource["to"],
            messaging_service_sid=resource["messaging_service_sid"],
            post_to=post_to,
            signature=signature,
        )

    # handlers

    async def _create_message(self, request: web.Request) -> web.Response:
        fields = tuple((k, str(v)) for k, v in (await request.post()).items())
        user = self._authenticated(request)
        record = _Recorder(self, request, fields, user)
        if user is None:
            return await record.error(401, 20003, extra={"detail": _AUTH_DETAIL})
        if request.match_info["account_sid"] != self.account_sid:
            return await record.error(404, 20404)
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "error":
            if fault.body is not None:
                return await record.raw(fault.status, fault.body, fault.content_type)
            return await record.error(fault.status, fault.code, fault.message)
        form = record.form
        problem = _invalid(form)
        if problem:
            return await record.error(400, problem)
        resource = self._new_resource(form, [v for k, v in fields if k == "MediaUrl"])
        self.resources[resource["sid"]] = resource
        answer = await record.done(201, resource)
        if fault is not None and fault.kind == "stall":
            await self._released.wait()
        return answer

    async def _fetch_message(self, request: web.Request) -> web.Response:
        record = _Recorder(self, request, (), self._authenticated(request))
        if record.auth_user is None:
            return await record.error(401, 20003, extra={"detail": _AUTH_DETAIL})
        resource = self.resources.get(request.match_info["sid"])
        if request.match_info["account_sid"] != self.account_sid or resource is None:
            return await record.error(404, 20404)
        return await record.done(200, resource)

    async def _not_found(self, request: web.Request) -> web.Response:
        record = _Recorder(self, request, (), self._authenticated(request))
        return await record.error(404, 20404)

    def _authenticated(self, request: web.Request) -> str | None:
        """The account SID when Basic auth matches this account, else None."""
        # parsed by hand: aiohttp 3.14 deprecates BasicAuth (and so BasicAuth.decode)
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
            login, colon, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not colon:
            return None
        good_user = hmac.compare_digest(login.encode(), self.account_sid.encode())
        good_token = hmac.compare_digest(password.encode(), self.auth_token.encode())
        return login if good_user and good_token else None

    def _new_resource(self, form: dict[str, str], media: list[str]) -> dict[str, Any]:
        sid = new_sid("SM" if not media else "MM")
        now = rfc2822(datetime.now(UTC))
        service = form.get("MessagingServiceSid")
        from_ = form.get("From")
        pooled = service is not None and from_ is None  # Twilio picks the sender later
        body = form.get("Body", "")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "0" if pooled else str(sms_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if pooled else "queued",
            "subresource_uris": {
                "media": f"{uri}/Media.json",
                "feedback": f"{uri}/Feedback.json",
            },
            "to": form["To"],
            "uri": f"{uri}.json",
        }

    async def _record(self, entry: TwilioRequest) -> None:
        async with self._changed:
            self.requests.append(entry)
            self._changed.notify_all()


_MESSAGES = "/Messages.json"
_AUTH_DETAIL = "Your AccountSid or AuthToken was incorrect."


def _invalid(form: Mapping[str, str]) -> int | None:
    """Twilio's code for a send it cannot take, checked in its order, or None."""
    if not form.get("To"):
        return 21604
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603
    if not form.get("Body") and "MediaUrl" not in form and not form.get("ContentSid"):
        return 21602
    if len(form.get("Body", "")) > MAX_BODY:
        return 21617
    return None


class _Recorder:
    """Answers one request and records it with its answer."""

    def __init__(
        self,
        fake: TwilioFake,
        request: web.Request,
        fields: tuple[tuple[str, str], ...],
        auth_user: str | None,
    ) -> None:
        self.fake = fake
        self.request = request
        self.fields = fields
        self.auth_user = auth_user
        self.received_at = datetime.now(UTC)

    @property
    def form(self) -> dict[str, str]:
        form: dict[str, str] = {}
        for name, value in self.fields:
            form.setdefault(name, value)
        return form

    async def done(self, status: int, answer: dict[str, Any]) -> web.Response:
        await self._record(status, dict(answer))
        return web.json_response(answer, status=status)

    async def error(
        self,
        status: int,
        code: int,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> web.Response:
        body = twilio_error(code, status, message) | (extra or {})
        response = await self.done(status, body)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response

    async def raw(self, status: int, body: str, content_type: str) -> web.Response:
        await self._record(status, None)
        return web.Response(status=status, text=body, content_type=content_type)

    async def _record(self, status: int, answer: dict[str, Any] | None) -> None:
        await self.fake._record(
            TwilioRequest(
                method=self.request.method,
                path=self.request.path,
                fields=self.fields,
                auth_user=self.auth_user,
                received_at=self.received_at,
                status=status,
                answer=answer,
            )
        )


# ------------------------------------------------------------------------------------ webhooks


def sign(url: str, form: Mapping[str, str], auth_token: str) -> str:
    """X-Twilio-Signature for a POST of `form` to `url`, by the twilio package's own code."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


async def post_signed(
    url: str,
    form: Mapping[str, str],
    *,
    auth_token: str,
    post_to: str | None = None,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> WebhookAnswer:
    """POST `form` as Twilio does: urlencoded, signed over the public `url`, sent to `post_to`
    (default: `url` itself). `signature` overrides the computed one ("" sends none at all)."""
    signed = sign(url, form, auth_token) if signature is None else signature
    sent_headers = {
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        **(headers or {}),
    }
    if signed:
        sent_headers["X-Twilio-Signature"] = signed
    async with (
        aiohttp.ClientSession() as session,
        session.post(post_to or url, data=dict(form), headers=sent_headers) as response,
    ):
        return WebhookAnswer(
            status=response.status,
            text=await response.text(),
            content_type=response.content_type,
            headers=dict(response.headers),
        )


def status_callback_form(
    message_sid: str,
    status: str,
    *,
    account_sid: str,
    error_code: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    messaging_service_sid: str | None = None,
) -> dict[str, str]:
    """The form of Twilio's message status callback."""
    form = {
        "ApiVersion": API_VERSION,
        "AccountSid": account_sid,
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if from_ is not None:
        form["From"] = from_
    if to is not None:
        form["To"] = to
    if messaging_service_sid is not None:
        form["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


async def send_status(
    url: str,
    message_sid: str,
    status: str,
    *,
    error_code: int | None = None,
    account_sid: str,
    auth_token: str,
    from_: str | None = None,
    to: str | None = None,
    messaging_service_sid: str | None = None,
    post_to: str | None = None,
    signature: str | None = None,
) -> WebhookAnswer:
    """POST Twilio's status callback for `message_sid` (MessageSid, MessageStatus, SmsStatus,
    AccountSid, From, To, ErrorCode...) to `url`, signed with `auth_token`."""
    form = status_callback_form(
        message_sid,
        status,
        account_sid=account_sid,
        error_code=error_code,
        from_=from_,
        to=to,
        messaging_service_sid=messaging_service_sid,
    )
    return await post_signed(url, form, auth_token=auth_token, post_to=post_to, signature=signature)


def _country(number: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or ""
    except phonenumbers.NumberParseException:
        return ""


def inbound_sms_form(
    *,
    from_: str,
    to: str,
    body: str,
    account_sid: str,
    message_sid: str | None = None,
    num_media: int | None = None,
    media: Sequence[tuple[str, str]] = (),
    messaging_service_sid: str | None = None,
    opt_out_type: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """The form Twilio posts to a number's incoming-message webhook: MessageSid ("SM" + 32 hex,
    "MM" with media), SmsSid, SmsMessageSid, AccountSid, From, To, Body, NumMedia, NumSegments,
    SmsStatus "received", ApiVersion, geographic fields, MediaUrl{i} / MediaContentType{i} per
    `media` item (url, content type), MessagingServiceSid for a number in a service's pool and
    OptOutType (STOP, START, HELP) when the service's Advanced Opt-Out handled a keyword."""
    count = len(media) if num_media is None else num_media
    sid = message_sid or new_sid("MM" if count else "SM")
    form = {
        "ToCountry": _country(to),
        "ToState": "",
        "ToCity": "",
        "ToZip": "",
        "FromCountry": _country(from_),
        "FromState": "",
        "FromCity": "",
        "FromZip": "",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "MessageSid": sid,
        "NumMedia": str(count),
        "NumSegments": str(sms_segments(body)),
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "From": from_,
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
    }
    for index, (media_url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = media_url
        form[f"MediaContentType{index}"] = content_type
    if messaging_service_sid is not None:
        form["MessagingServiceSid"] = messaging_service_sid
    if opt_out_type is not None:
        form["OptOutType"] = opt_out_type
    form.update(extra)
    return form


# ------------------------------------------------------------------------- the rebasing client


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def twilio_fake() -> AsyncIterator[TwilioFake]:
    """A started TwilioFake: .account_sid ("AC" + 32 hex), .auth_token, .url."""
    async with TwilioFake() as fake:
        yield fake


@pytest.fixture
async def twilio_client(twilio_fake: TwilioFake) -> AsyncIterator[Client]:
    """The real twilio Client for the fake's account, talking to the fake; session closed after."""
    http = RebasingHttpClient(twilio_fake.url, timeout=5.0)
    try:
        yield Client(twilio_fake.account_sid, twilio_fake.auth_token, http_client=http)
    finally:
        await http.close()
